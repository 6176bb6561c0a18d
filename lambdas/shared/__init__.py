"""Runtime helpers more than one function uses; every function's asset carries this package."""
