"""The AdaHAT paper folder. `METHODS` registers AdaHAT and the HAT variants of its study."""

from adahat.ablations import AdaHATNoReg, AdaHATNoSum
from adahat.adahat import AdaHAT
from adahat.hat_variants import HATConst1, HATConstAlpha, HATRandom
from baselines import METHODS as BASELINE_METHODS

METHODS = {**BASELINE_METHODS,
           **{cls.name: cls for cls in (AdaHAT, AdaHATNoSum, AdaHATNoReg, HATRandom, HATConstAlpha, HATConst1)}}
