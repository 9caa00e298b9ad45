"""Model families: the estimator factory, the fit of one family, and the families themselves. This package's
face imports nothing, so that a family module importing a sibling never runs the package's code first.

- ``fit``: ``build_estimator`` and ``fit_family``, the fit of one family by name;
- ``boosters``, ``bundle``: the boosted models rebuilt from their own formats, and a model bundle's files;

- ``family``: what a family is (a builder and, when plain ``fit`` is not enough, its own fit);
- ``families``: the registry, family name to ``Family``;
- ``classic``: LightGBM (and its extremely randomised variant), CatBoost, logistic/ridge, decision tree, random
  forest, extra trees, SVM;
- ``baselines``: seasonal naive forecast, TF-IDF + logistic regression;
- ``networks``: the torch loop and one module per network (mlp, cnn, transformer, gru);
- ``settings``: ``TrainSettings``, what every family reads.
"""
