"""Paper-independent methods and the reference learners. `METHODS` is the explicit registry of this package."""

from baselines.cbp import CBP
from baselines.der import DER, DERpp
from baselines.ewc import EWC
from baselines.finetuning import Finetuning
from baselines.fix import Fix
from baselines.hat import HAT
from baselines.independent import Independent
from baselines.joint import Joint
from baselines.lwf import LwF
from baselines.random_network import Random
from baselines.wsn import WSN

METHODS = {cls.name: cls for cls in (Finetuning, Fix, LwF, EWC, DER, DERpp, HAT, WSN, CBP, Joint, Independent, Random)}
