from servicekit.http import serve
from tickets.app import build_app
from tickets.config import Settings

settings = Settings()
serve(build_app(settings), settings)
