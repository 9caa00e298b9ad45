"""Features: the learned preprocessing every model of a dataset shares, and the rows a model reads.

Numeric columns: imputation, clipping to training quantiles (outliers), scaling. Date and datetime columns:
calendar numbers (year, month, day, weekday, day of the year, hour, days since 1970), then as numbers. Categorical columns:
imputation with an explicit missing category, rare categories grouped, then integer codes (unknown
categories at serving time get their own code, -1). Model families add their own last encoding
(one-hot for linear models and SVMs, native categoricals for LightGBM) in ``encoder_for``. The
fitted preprocessor and the model are saved as one scikit-learn Pipeline, so serving runs exactly
what training ran; ``as_model_input`` makes the rows that Pipeline reads from raw rows.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, RobustScaler, StandardScaler

from trainflow.forms import FormModel
from trainflow.schema import DatasetSchema

MISSING = "__missing__"
UNKNOWN_CODE = -1

Encoding = Literal["auto", "onehot", "ordinal", "native"]


class TransformSettings(FormModel):
    """How features are prepared; every step is fitted on the training split only."""

    numeric_imputation: Literal["median", "mean", "most_frequent"] = Field(
        "median", description="value for missing numbers")
    clip_quantiles: tuple[float, float] | None = Field(
        (0.001, 0.999), description="clip numbers to these training quantiles (outliers); null to keep all")
    scaling: Literal["standard", "robust", "none"] = Field("standard", description="numeric scaling")
    min_category_frequency: int = Field(
        5, ge=1, description="categories seen fewer times in training are grouped as infrequent")
    categorical_encoding: Encoding = Field(
        "auto", description="auto: native for LightGBM, ordinal for trees, one-hot for linear models and SVMs")
    in_folds: bool = Field(
        True, description="fit the preprocessing anew inside each cross-validation fold that compares the families, "
                          "tunes them and weighs the ensemble, so that no held-out row shapes the imputation, clipping, "
                          "scaling or category codes it is scored with; off: the folds share the training split's")


class CategoryCoder(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Integer codes for categorical columns, learned in ``fit``, vectorised with pandas.

    Per column: categories seen at least ``min_frequency`` times get codes 0..k-1 (sorted); rarer ones
    share code k; a missing value is the category ``__missing__``; a category never seen gets -1.
    (scikit-learn's OrdinalEncoder does the same, but counts categories in a Python loop over object
    arrays: 13 of 26 seconds of transform on a million Adult rows.)

    Args:
        min_frequency: Rows a category needs in training to get a code of its own.
    """

    def __init__(self, min_frequency: int = 1):
        self.min_frequency = min_frequency

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        X = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.categories_, self.infrequent_categories_ = [], []
        for col in X.columns:
            counts = _category_counts(X[col])
            self.categories_.append(np.asarray(sorted(counts.index[counts >= self.min_frequency]), dtype=object))
            self.infrequent_categories_.append(np.asarray(sorted(counts.index[counts < self.min_frequency]),
                                                          dtype=object))
        return self

    def transform(self, X):  # noqa: ANN001, ANN201, N803
        X = pd.DataFrame(X)
        out = np.empty(X.shape, dtype=np.float64, order="F")  # filled a column at a time: each one contiguous
        for j, col in enumerate(X.columns):
            frequent, rare = self.categories_[j], self.infrequent_categories_[j]
            # the code of each category's position, and last the unknown code, where position -1 lands
            codes = np.concatenate([np.arange(len(frequent)), np.full(len(rare), len(frequent)),
                                    [UNKNOWN_CODE]]).astype(np.float64)
            out[:, j] = _category_values(X[col], [*frequent, *rare], codes)
        return out


def _as_categories(s: pd.Series) -> pd.Series:
    return s.astype("str").fillna(MISSING)


def _category_counts(s: pd.Series) -> pd.Series:
    """Rows per category (missing values as ``__missing__``), each category in its string form. A pandas
    Categorical (a column read as a Parquet dictionary) is counted on its codes, its strings never made."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        counts = np.bincount(s.cat.codes.to_numpy() + 1, minlength=len(s.cat.categories) + 1)
        found = counts > 0
        return pd.Series(counts[found], index=pd.Index(_code_names(s)[found]))
    return _as_categories(s).value_counts()


def _code_names(s: pd.Series) -> np.ndarray:
    """The category of each code of a pandas Categorical as a string, from code -1 (missing: ``__missing__``)
    on: the row with code ``c`` is position ``c + 1``."""
    return np.asarray([MISSING, *s.cat.categories.astype("str")], dtype=object)


def _category_values(s: pd.Series, categories: list[str], values: np.ndarray) -> np.ndarray:
    """``values[i]`` for each value that is ``categories[i]`` (missing values as ``__missing__``), ``values[-1]``
    where it is none of them. Arrow-backed strings are looked up in Arrow (``index_in`` on the column's own
    buffers, where pandas' Categorical first makes a numpy array of Python strings); anything else goes through its string form, as in ``fit``."""
    if isinstance(s.dtype, pd.CategoricalDtype):  # each category looked up once, then taken by the rows' codes
        of_code = values[pd.Index(categories, dtype=object).get_indexer(_code_names(s))]
        return of_code.take(s.cat.codes.to_numpy().astype(np.intp) + 1)
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        strings = pc.fill_null(pa.array(s, from_pandas=True), MISSING)
        found = pc.index_in(strings, value_set=pa.array([str(c) for c in categories], type=strings.type))
        return values.take(pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.intp))
    # not pd.Categorical: values outside its categories are deprecated there (pandas 4 raises)
    return values.take(pd.Index(categories, dtype=object).get_indexer(_as_categories(s).to_numpy(dtype=object)))


class Imputer(SimpleImputer):
    """scikit-learn's ``SimpleImputer``, whose median is NumPy's ``nanmedian`` (a partition per column) instead
    of a masked-array median (a sort of every column), a large share of the transform stage on many rows. The same
    statistics, every other strategy and the transform are SimpleImputer's own (tested against it)."""

    def _dense_fit(self, X, strategy, missing_values, fill_value):  # noqa: ANN001, ANN202, N803 (sklearn's)
        if strategy != "median":
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        from sklearn.utils._mask import _get_mask

        missing = _get_mask(X, missing_values)
        self._fit_indicator(missing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column's median is nan, as in sklearn
            median = np.nanmedian(np.where(missing, np.nan, X) if missing.any() else X, axis=0)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Clip each column to quantiles learned in ``fit`` (``lower_``, ``upper_``).

    Args:
        lower: Lower quantile.
        upper: Upper quantile.
    """

    def __init__(self, lower: float = 0.001, upper: float = 0.999):
        self.lower = lower
        self.upper = upper

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        arr = np.asarray(X, dtype=float)
        self.n_features_in_ = arr.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.lower_, self.upper_ = np.nanquantile(arr, [self.lower, self.upper], axis=0)  # one partition a column
        return self

    def transform(self, X):  # noqa: ANN001, ANN201, N803
        return np.clip(np.asarray(X, dtype=float), self.lower_, self.upper_)


CALENDAR_PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour")


class CalendarFeatures(TransformerMixin, BaseEstimator):
    """Numbers from date and datetime columns (ISO 8601 text or datetime values): per column its year, month,
    day of the month, day of the week (Monday 0), day of the year, hour (only when the training rows have a time
    of day) and days since 1970-01-01 (the trend), named ``<column>_<part>``; a value that is not a date is
    missing. Times with an offset are taken in UTC, times without one as they are."""

    def fit(self, X, y=None):  # noqa: ANN001, ANN201, N803
        frame = pd.DataFrame(X)
        self.columns_ = [str(c) for c in frame.columns]
        self.n_features_in_ = len(self.columns_)
        self.parts_ = {}
        for c in frame.columns:
            when = _as_datetimes(frame[c])
            timed = bool(when.notna().any() and (when.dropna() != when.dropna().dt.normalize()).any())
            self.parts_[str(c)] = [p for p in CALENDAR_PARTS if p != "hour" or timed] + ["days"]
        return self

    def transform(self, X):  # noqa: ANN001, ANN201, N803
        frame = pd.DataFrame(X)
        out = {}
        for c, name in zip(frame.columns, self.columns_):
            when = _as_datetimes(frame[c])
            for part in self.parts_[name]:
                values = ((when - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1) if part == "days"
                          else getattr(when.dt, part))
                out[f"{name}_{part}"] = values.astype(float).to_numpy()
        return pd.DataFrame(out, index=frame.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:  # noqa: ANN001
        return np.array([f"{c}_{p}" for c in self.columns_ for p in self.parts_[c]], dtype=object)


def _as_datetimes(s: pd.Series) -> pd.Series:
    """A column as naive datetimes (UTC where a value has an offset); NaT where a value is not an ISO date."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
    text = s.astype("str").where(s.notna())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a mixture of offsets: converted to UTC, as asked
        when = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=text.str.contains(
            r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True, na=False).any())
    return when.dt.tz_localize(None) if when.dt.tz is not None else when


def build_preprocessor(schema: DatasetSchema, settings: TransformSettings) -> ColumnTransformer:
    """The unfitted preprocessor for a dataset (numbers and categorical codes, original column names).

    Text columns pass through untouched (the text models tokenise them). Pixels and windows of a series
    are only imputed: clipping or scaling each column on its own would distort the image or the series,
    so the CNN and the forecaster standardise the whole signal themselves (their statistics are saved
    with the model).
    """
    signal = schema.modality in ("image", "series")
    numeric_steps: list = [("impute", Imputer(strategy=settings.numeric_imputation))]
    if settings.clip_quantiles and not signal:
        numeric_steps.append(("clip", QuantileClipper(*settings.clip_quantiles)))
    if settings.scaling != "none" and not signal:
        numeric_steps.append(("scale", StandardScaler() if settings.scaling == "standard" else RobustScaler()))
    categorical = Pipeline([("codes", CategoryCoder(min_frequency=settings.min_category_frequency))])
    dates = [] if not schema.datetime_features else [
        ("date", Pipeline([("calendar", CalendarFeatures()), *clone(Pipeline(numeric_steps)).steps]),
         schema.datetime_features)]
    ct = ColumnTransformer(
        [("num", Pipeline(numeric_steps), schema.numeric_features),
         ("cat", categorical, schema.categorical_features),
         *dates,
         *([("text", "passthrough", schema.text_features)] if schema.text_features else [])],
        remainder="drop", verbose_feature_names_out=False,
    )
    return ct.set_output(transform="pandas")


def encoder_for(schema: DatasetSchema, encoding: Encoding) -> ColumnTransformer | str:
    """The per-family encoding step that follows the preprocessor."""
    if encoding != "onehot" or not schema.categorical_features:
        return "passthrough"
    return ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), schema.categorical_features)],
        remainder="passthrough", verbose_feature_names_out=False,
    )


def as_model_input(df: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The feature columns of raw rows, categorical values as pandas strings (whatever their raw type), or as a
    pandas Categorical of strings where they are one (a column read as a Parquet dictionary: the coder takes
    its codes)."""
    x = df[[c.name for c in schema.features]]  # a new frame (copy on write): ``df`` never changes through it
    as_text = [col for col in [*schema.categorical_features, *schema.text_features]
               if not (col in schema.categorical_features and _text_categorical(x[col]))]
    # one astype for them all: column by column, pandas' per-call cost dominated scoring a single row online
    return x.astype(dict.fromkeys(as_text, "str")) if as_text else x


def _text_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(s.cat.categories)


def known_categories(pipeline: Pipeline, schema: DatasetSchema) -> dict[str, set[str]]:
    """The categories the pipeline's preprocessor saw in training, per categorical column.

    Works for CategoryCoder, for scikit-learn's OrdinalEncoder (models registered before CategoryCoder, whose
    ``infrequent_categories_`` holds None for a column without rare categories) and for a serving variant,
    which carries them. A dataset without categorical columns has none (its coder was fitted on no column and
    holds no categories).
    """
    if not schema.categorical_features:
        return {}
    if hasattr(pipeline, "known_categories"):  # a serving variant carries them (trainflow.export.OnnxModel)
        return pipeline.known_categories
    codes = pipeline.named_steps["preprocess"].named_transformers_["cat"].named_steps["codes"]
    rare = getattr(codes, "infrequent_categories_", None) or [None] * len(codes.categories_)
    return {col: {str(v) for v in (*seen, *(infrequent if infrequent is not None else ()))}
            for col, seen, infrequent in zip(schema.categorical_features, codes.categories_, rare)}


def fit_features(train: pd.DataFrame, schema: DatasetSchema,
                 settings: TransformSettings) -> tuple[ColumnTransformer, pd.DataFrame]:
    """The preprocessor fitted on training rows and those rows' features, in one pass (scikit-learn's
    ``ColumnTransformer.fit`` transforms the rows anyway: a second ``transform`` would do that work twice)."""
    pre = build_preprocessor(schema, settings)
    return pre, _labelled(pre.fit_transform(as_model_input(train, schema)), train, schema)


def features_of(pre: ColumnTransformer, part: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The features of rows (by a fitted preprocessor), the label column appended, the rows' index kept."""
    return _labelled(pre.transform(as_model_input(part, schema)), part, schema)


def _labelled(out: pd.DataFrame, part: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    out.index = part.index
    out[schema.label] = part[schema.label].array  # as it is (text stays Arrow-backed: no round trip via objects)
    return out
