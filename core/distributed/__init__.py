"""Distributed training measured on real torch.distributed: DDP, ZeRO-1, FSDP2 (ZeRO-2-like, ZeRO-3), and tensor /
pipeline parallelism (TP, PP with GPipe or 1F1B, TP × PP)."""
