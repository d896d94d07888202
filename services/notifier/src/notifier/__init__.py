"""Email and WhatsApp/SMS notifications with a delivery log."""
