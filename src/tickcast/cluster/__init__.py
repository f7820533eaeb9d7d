"""Several nodes as one gateway: the bridge between a node's hub and the bus."""
