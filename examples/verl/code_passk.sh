#!/usr/bin/env bash
# Code (CodeContests/TACO-style tests) with the pass@k estimator and our reward server's code backend.
# See README.md. Extra Hydra overrides are passed through.
set -euo pipefail
DATA=${DATA:-$HOME/data/ia_code}
MODEL=${MODEL:-Qwen/Qwen2.5-Coder-1.5B-Instruct}
REWARD_URL=${REWARD_URL:-http://127.0.0.1:8000}
N_GPUS=${N_GPUS:-8}

python -m verl.trainer.main_ppo \
    algorithm.adv_estimator=ia_passk_loo \
    data.train_files=$DATA/train.parquet \
    data.val_files=$DATA/test.parquet \
    data.train_batch_size=64 \
    data.max_prompt_length=2048 \
    data.max_response_length=4096 \
    actor_rollout_ref.model.path=$MODEL \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    reward.custom_reward_function.path=pkg://trainer_client.integrations.verl_reward \
    reward.custom_reward_function.name=compute_score \
    +reward.custom_reward_function.reward_kwargs.url=$REWARD_URL \
    +reward.custom_reward_function.reward_kwargs.on_error=nan \
    trainer.n_gpus_per_node=$N_GPUS \
    trainer.nnodes=1 \
    trainer.total_epochs=1 \
    trainer.logger='["console"]' \
    trainer.project_name=inference_aware \
    trainer.experiment_name=code_passk_loo \
    "$@"
