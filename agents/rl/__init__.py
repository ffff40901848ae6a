"""Recurrent PPO for any cell of :mod:`agents.cells`, on Stable-Baselines3.

    from agents.rl import RecurrentPPO, evaluate, make_vec_env
    env = make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=0, corridor_length=10)
    model = RecurrentPPO("CellPolicy", env, policy_kwargs={"cell": "gru", "hidden_size": 64}, seed=0)
    model.learn(200_000)
    evaluate(model, make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=100, corridor_length=10), 200)

- :class:`RLConfig` (:mod:`agents.rl.config`) and :func:`train_rl` (:mod:`agents.rl.trainer`): a
  run from its settings into a run directory (what ``memory-bench rl`` and the sweeps call).
- :class:`RecurrentPPO` (:mod:`agents.rl.ppo`): the SB3 algorithm (learn / predict with state /
  save / load / callbacks / logger), trained on whole env-sequences with a resets mask.
- :class:`CellPolicy`, :class:`MultiInputCellPolicy` (:mod:`agents.rl.policy`).
- :class:`SequenceRolloutBuffer` (:mod:`agents.rl.buffer`).
- :class:`VectorEnvAdapter`, :func:`make_vec_env` (:mod:`agents.rl.vec_env`): Gymnasium vector envs
  (memenvs' numpy-batched ones) as SB3 VecEnvs.
- :func:`evaluate` (:mod:`agents.rl.evaluation`): mean return and success rate over episodes.
- :func:`load_policy` (:mod:`agents.rl.runs`): the trained model of a ``memory-bench rl`` run,
  rebuilt from its config.json and weights-only policy.pt (``RecurrentPPO.load("model.zip")``
  unpickles with cloudpickle, which can run code from the file: load only trusted archives).
"""

from __future__ import annotations

from agents._lazy import lazy_exports

# Public names and their modules, imported on first use: ``memory-bench --help`` reaches
# agents.rl.cli through this package and must not import torch or Stable-Baselines3.
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "agents.rl.buffer": ["DictSequenceRolloutBuffer", "SequenceRolloutBuffer", "SequenceSamples"],
    "agents.rl.config": ["RLConfig"],
    "agents.rl.evaluation": ["evaluate"],
    "agents.rl.policy": ["CellPolicy", "MultiInputCellPolicy", "state_to_numpy", "state_to_tensor"],
    "agents.rl.ppo": ["RecurrentPPO"],
    "agents.rl.runs": ["load_policy"],
    "agents.rl.trainer": ["train_rl"],
    "agents.rl.vec_env": ["VectorEnvAdapter", "make_vec_env", "split_info"],
})
