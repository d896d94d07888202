from notifier.app import build_app
from notifier.config import Settings
from servicekit.http import serve

settings = Settings()
serve(build_app(settings), settings)
