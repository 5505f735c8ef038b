# Consoles keep no rows of their own: who may open one is accounts.access (operator of the VM),
# and tokens live in Redis (consoles/tokens.py).
