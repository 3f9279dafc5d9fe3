"""What the caller is handed over a unix socket (SCM_RIGHTS): the pty master of ``process.terminal``
(``--console-socket``) and a pidfd of the process (``--pidfd-socket``).
"""
