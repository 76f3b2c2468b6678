"""The AmnesiacHAT paper folder: continual unlearning. `METHODS` registers the unlearning methods of its study
(the baselines stay available for plain continual-learning runs)."""

from amnesiachat.amnesiac import (
    AmnesiacDER,
    AmnesiacDERpp,
    AmnesiacEWC,
    AmnesiacFinetuning,
    AmnesiacLwF,
    UnlearnableIndependent,
)
from amnesiachat.amnesiachat import AmnesiacHAT
from amnesiachat.clpu_derpp import CLPUDERpp
from baselines import METHODS as BASELINE_METHODS

UNLEARNING_METHODS = (AmnesiacFinetuning, AmnesiacLwF, AmnesiacEWC, AmnesiacDER, AmnesiacDERpp, CLPUDERpp,
                      AmnesiacHAT)
METHODS = {**BASELINE_METHODS, "independent": UnlearnableIndependent,
           **{cls.name: cls for cls in UNLEARNING_METHODS}}
