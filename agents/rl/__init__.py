"""Recurrent PPO for any cell of :mod:`agents.cells`, on Stable-Baselines3.

    from agents.rl import RecurrentPPO, evaluate, make_vec_env
    env = make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=0, corridor_length=10)
    model = RecurrentPPO("CellPolicy", env, policy_kwargs={"cell": "gru", "hidden_size": 64}, seed=0)
    model.learn(200_000)
    evaluate(model, make_vec_env("memenvs/TMaze-v0", n_envs=8, seed=100, corridor_length=10), 200)

- :class:`RecurrentPPO` (:mod:`agents.rl.ppo`): the SB3 algorithm (learn / predict with state /
  save / load / callbacks / logger), trained on whole env-sequences with a resets mask.
- :class:`CellPolicy`, :class:`MultiInputCellPolicy` (:mod:`agents.rl.policy`).
- :class:`SequenceRolloutBuffer` (:mod:`agents.rl.buffer`).
- :class:`VectorEnvAdapter`, :func:`make_vec_env` (:mod:`agents.rl.vec_env`): Gymnasium vector envs
  (memenvs' numpy-batched ones) as SB3 VecEnvs.
- :func:`evaluate` (:mod:`agents.rl.evaluation`): mean return and success rate over episodes.
"""

from agents.rl.buffer import DictSequenceRolloutBuffer, SequenceRolloutBuffer, SequenceSamples
from agents.rl.evaluation import evaluate
from agents.rl.policy import CellPolicy, MultiInputCellPolicy, state_to_numpy, state_to_tensor
from agents.rl.ppo import RecurrentPPO
from agents.rl.vec_env import VectorEnvAdapter, make_vec_env, split_info

__all__ = [
    "CellPolicy",
    "DictSequenceRolloutBuffer",
    "MultiInputCellPolicy",
    "RecurrentPPO",
    "SequenceRolloutBuffer",
    "SequenceSamples",
    "VectorEnvAdapter",
    "evaluate",
    "make_vec_env",
    "split_info",
    "state_to_numpy",
    "state_to_tensor",
]
