"""Reward models: train (TRL RewardTrainer + PEFT), score whole conversations or per turn, quantize, serve."""
