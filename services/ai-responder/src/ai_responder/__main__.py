from ai_responder.app import build_app
from ai_responder.config import Settings
from servicekit.http import serve

settings = Settings()
serve(build_app(settings), settings)
