"""Key types, encrypted key files and the signing-key protocol."""
