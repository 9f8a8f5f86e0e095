"""Network building blocks: encoder stack, shared-depth generator, heads, position bias."""
