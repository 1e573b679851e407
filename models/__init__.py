"""Network definitions: pure ``nn.Module`` classes, one file per challenge team (no I/O, no training code)."""
