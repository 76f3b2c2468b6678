"""FG-AdaHAT once per neuron-importance measure of the paper: nine registered methods `fgadahat_<measure>`.

Each class only names its measure; the measure itself is a function of `fg_adahat/importance.py` (chosen by the
`importance` key), and its published alpha and b_L are in `configs/fgadahat_<measure>.yaml`, read after
`fgadahat.yaml`. Everything else is `FGAdaHAT`: the rate a = alpha / (c^t_l I^{<t} + alpha) and the per-step
importance, min-max normalised within the layer and weighted by the step's soft mask (docs/fg_adahat.md).

Notation of the formulas: W_l[i, .] are the input weights of unit i of weighted layer l, W_{l+1}[., i] its output
weights (the current head's after the last layer), mean|h_{l,i}| the mean absolute masked activation of the step;
gradients are the adjusted ones, read after the optimizer step.
"""

from __future__ import annotations

from fg_adahat.fgadahat import FGAdaHAT


class FGAdaHAT_IG(FGAdaHAT):
    """FG-AdaHAT (IG), input gradients: u_{l,i} = sum |dL/dW_l[i, .]|."""

    name = "fgadahat_ig"


class FGAdaHAT_OG(FGAdaHAT):
    """FG-AdaHAT (OG), output gradients: u_{l,i} = sum |dL/dW_{l+1}[., i]| (the head's gradient is not adjusted)."""

    name = "fgadahat_og"


class FGAdaHAT_CU(FGAdaHAT):
    """FG-AdaHAT (CU), contribution utility: u_{l,i} = mean|h_{l,i}| * sum |W_{l+1}[., i]|."""

    name = "fgadahat_cu"


class FGAdaHAT_ICU(FGAdaHAT):
    """FG-AdaHAT (ICU), input contribution utility: u_{l,i} = mean|h_{l,i}| * sum |W_l[i, .]|."""

    name = "fgadahat_icu"


class FGAdaHAT_AFI(FGAdaHAT):
    """FG-AdaHAT (AFI), activation Fisher information: u_{l,i} = mean|h_{l,i}| * sum (dL/dW_l[i, .])^2 as
    described; with `afi_semantics: paper` (default) ICU's formula, which the code behind the published numbers
    computed."""

    name = "fgadahat_afi"


class FGAdaHAT_FA(FGAdaHAT):
    """FG-AdaHAT (FA), feature ablation: u_{l,i} = mean over the batch of |z(x) - z_{without i}(x)|, z the target
    logit and z_{without i} the same with unit i's output set to 0 (all units of a layer in one batched pass)."""

    name = "fgadahat_fa"


class FGAdaHAT_II(FGAdaHAT):
    """FG-AdaHAT (II), internal influence of each weighted layer's output (Captum, zero baseline, 5 steps):
    u_{l,i} = mean |A_{l,i}|."""

    name = "fgadahat_ii"


class FGAdaHAT_GS(FGAdaHAT):
    """FG-AdaHAT (GS), GradientSHAP of each weighted layer's output (Captum, all-zeros baseline):
    u_{l,i} = mean |A_{l,i}|."""

    name = "fgadahat_gs"


class FGAdaHAT_DL(FGAdaHAT):
    """FG-AdaHAT (DL), DeepLIFT of each weighted layer's output (Captum, zero baseline): u_{l,i} = mean |A_{l,i}|."""

    name = "fgadahat_dl"


MEASURE_METHODS = (FGAdaHAT_IG, FGAdaHAT_OG, FGAdaHAT_CU, FGAdaHAT_ICU, FGAdaHAT_AFI, FGAdaHAT_FA, FGAdaHAT_II,
                   FGAdaHAT_GS, FGAdaHAT_DL)
