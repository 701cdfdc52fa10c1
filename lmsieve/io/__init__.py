"""Reading and writing shards, local or on any fsspec filesystem."""
from lmsieve.io.output import MANIFEST, RunOutput
from lmsieve.io.parquet import InputFile, read_documents, read_parquet_file, sha256_file, write_table
from lmsieve.io.paths import expand_paths

__all__ = ["MANIFEST", "InputFile", "RunOutput", "expand_paths", "read_documents", "read_parquet_file", "sha256_file", "write_table"]
