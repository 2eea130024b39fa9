"""scout_auth: authentication middleware for organization API keys."""
