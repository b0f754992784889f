"""The noise schedule: one definition for training, sampling, previews and exported scheduler configs.

Two recipes:

* the paper's (Stable Diffusion's): scaled-linear betas 0.00085 -> 0.012 over 1000 steps, epsilon prediction,
  "leading" timestep spacing with ``steps_offset`` 1. At t = 999 about 7 % of the signal's amplitude is left, so
  training never shows pure noise while sampling from noise starts there.
* the recipe for sampling from noise ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Lin et al.
  2024): the same betas rescaled to zero terminal SNR, v-prediction and "trailing" spacing, so the first sampling
  step is exactly the pure-noise step training saw, and the model predicts the clean latent there instead of
  copying its input.

Every scheduler config the project writes or reads carries all of these keys, so a model is sampled the way it was
trained (``make_scheduler`` copies them from a model's scheduler config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

NUM_TRAIN_TIMESTEPS = 1000
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass(frozen=True)
class NoiseSchedule:
    prediction_type: str = "epsilon"
    rescale_betas_zero_snr: bool = False
    timestep_spacing: str = "leading"
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")

    def config(self) -> dict:
        """The diffusers scheduler config keys (``steps_offset`` 1 only belongs with "leading" spacing)."""
        return {**asdict(self), "steps_offset": 1 if self.timestep_spacing == "leading" else 0}

    @classmethod
    def from_config(cls, config: dict) -> NoiseSchedule:
        """Read a diffusers scheduler config; keys it lacks keep the paper's values (older exported models)."""
        fields = cls.__dataclass_fields__
        return cls(**{key: config[key] for key in fields if key in config and config[key] is not None})


PAPER_SCHEDULE = NoiseSchedule()
ZERO_SNR_V_SCHEDULE = NoiseSchedule(prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                    timestep_spacing="trailing")
