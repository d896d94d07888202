"""End-to-end performance benchmark of the widget path: `make bench` (= `python -m bench`)."""
