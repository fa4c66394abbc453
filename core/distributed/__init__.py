"""Distributed data-parallel training measured on real torch.distributed: DDP, ZeRO-1, FSDP2 (ZeRO-2-like, ZeRO-3)."""
