"""Online mixers and trainer integrations."""
