"""Product adapters: the contract, discovery through entry points, and the built-ins."""
