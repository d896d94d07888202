from servicekit.migrations import run_env
from tickets.store import Base

run_env(Base.metadata)
