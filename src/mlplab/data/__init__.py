"""Data: IDX reading/writing, fetching + verifying + caching, the dataset registry, splits
and pixel scaling. The library never prints; downloads report through callbacks."""

from mlplab.data.datasets import Dataset, data_record, dataset_info, dataset_name, list_datasets, load_dataset
from mlplab.data.fetch import (
    KNOWN_DATASETS,
    DataWarning,
    FetchResult,
    cache_dir,
    fetch_dataset,
    folder_dataset_name,
    load_idx_folder,
    resolve_data_dir,
)
from mlplab.data.idx import (
    parse_idx_bytes,
    read_idx,
    read_idx_pair,
    read_idx_with_sha256,
    write_idx,
)
from mlplab.data.preprocessing import SCALER_KINDS, Scaler
from mlplab.data.splits import (
    Split,
    all_samples,
    as_generator,
    balanced_ovr_subset,
    canonical,
    holdout_split,
    sklearn_train_test_split_indices,
    stratified_split,
    textbook_split,
    validation_split,
)

__all__ = [
    "Dataset", "data_record", "dataset_info", "dataset_name", "list_datasets", "load_dataset",
    "KNOWN_DATASETS", "DataWarning", "FetchResult", "cache_dir", "fetch_dataset",
    "folder_dataset_name", "load_idx_folder", "resolve_data_dir",
    "parse_idx_bytes", "read_idx", "read_idx_pair", "read_idx_with_sha256", "write_idx",
    "SCALER_KINDS", "Scaler",
    "Split", "all_samples", "as_generator", "balanced_ovr_subset", "canonical", "holdout_split",
    "sklearn_train_test_split_indices", "stratified_split", "textbook_split", "validation_split",
]
