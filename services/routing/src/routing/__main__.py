from routing.app import build_app
from routing.config import Settings
from servicekit.http import serve

settings = Settings()
serve(build_app(settings), settings)
