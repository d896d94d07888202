import conversation.store  # noqa: F401  -- registers the tables on the shared Base
from servicekit.db import Base
from servicekit.migrations import run_env

run_env(Base.metadata)
