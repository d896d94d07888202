from conversation.app import build_app
from conversation.config import Settings
from servicekit.http import serve

settings = Settings()
serve(build_app(settings), settings)
