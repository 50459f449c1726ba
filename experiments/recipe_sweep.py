"""The default recipe, chosen on validation: Adam's peak learning rate over 2 epochs.

python -m experiments.recipe_sweep --workdir=runs/recipe_sweep --seeds=3
The grid is declared in configs/recipe_sweep.py; the winner is the configuration with
the best mean validation accuracy (its page lists it).
"""

from experiments import sweep_cli

if __name__ == '__main__':
  sweep_cli.main('recipe_sweep')
