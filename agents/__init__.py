"""The learning algorithms and what only they use: SAC (``sac``), REINFORCE (``reinforce``),
their buffers (``buffers``) and the optimizer step with its NaN guard (``optim``)."""
