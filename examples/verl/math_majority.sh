#!/usr/bin/env bash
# MATH with the majority-vote estimator ia_maj_loo. verl does not pass answer classes to estimators, so this
# runs our trainer mode ia_sync, which grades each prompt's samples as one group to get them; every verl
# process must import it (VERL_USE_EXTERNAL_MODULES). See README.md.
set -euo pipefail
DATA=${DATA:-$HOME/data/ia_math}
MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
REWARD_URL=${REWARD_URL:-http://127.0.0.1:8000}
N_GPUS=${N_GPUS:-8}
export VERL_USE_EXTERNAL_MODULES=trainer_client.integrations.verl_trainer

python -m verl.trainer.main_ppo \
    algorithm.adv_estimator=ia_maj_loo \
    trainer.v1.trainer_mode=ia_sync \
    data.train_files=$DATA/train.parquet \
    data.val_files=$DATA/test.parquet \
    data.train_batch_size=128 \
    data.max_prompt_length=1024 \
    data.max_response_length=2048 \
    actor_rollout_ref.model.path=$MODEL \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=32 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
    reward.custom_reward_function.path=pkg://trainer_client.integrations.verl_reward \
    reward.custom_reward_function.name=compute_score \
    +reward.custom_reward_function.reward_kwargs.url=$REWARD_URL \
    trainer.n_gpus_per_node=$N_GPUS \
    trainer.nnodes=1 \
    trainer.total_epochs=1 \
    trainer.logger='["console"]' \
    trainer.project_name=inference_aware \
    trainer.experiment_name=math_maj_loo \
    "$@"
