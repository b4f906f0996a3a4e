"""Moving the repository into the sandbox and the changes back."""
