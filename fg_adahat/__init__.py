"""The FG-AdaHAT paper folder. `METHODS` registers everything its tables compare."""

from adahat import METHODS as ADAHAT_METHODS

METHODS = dict(ADAHAT_METHODS)
