"""python -m gateway"""

from gateway.app import build_app
from gateway.config import Settings
from servicekit.http import serve

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), settings)
