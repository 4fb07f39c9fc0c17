"""`python -m distilrnn ...`, the console script as a module: what `accelerate launch -m distilrnn`
and `torchrun -m distilrnn` start in each process."""

from distilrnn.cli import main

if __name__ == "__main__":
    main()
