"""Checking the user's own gradient code (numpy functions, torch.autograd.Functions) on the
numeric judge."""
