"""RPL+CoroCL (Residual Pattern Learning with context-robust contrastive learning, ICCV 2023)."""
