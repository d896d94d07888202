from analytics.app import build_app
from analytics.config import Settings
from servicekit.http import serve

settings = Settings()
serve(build_app(settings), settings)
