"""The catalogue of registered datasets: what each one is, where its files come from, and
how to read it.

Each :class:`Dataset` lists its files (:class:`DataFile`: a path relative to a data folder,
the public source pinned to a commit, and the sha256 of the bytes). The checksums live in
``SHA256SUMS`` beside this module, in ``sha256sum`` format, so a data folder can be checked
with ``sha256sum --ignore-missing -c SHA256SUMS``. Finding and downloading the files is
:mod:`bayescale.data.registry`'s job; reading them into a table is :mod:`bayescale.data.loaders`'s.

Nothing here imports JAX or pandas, so listing datasets is instant.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["DataFile", "Dataset", "DATASETS", "SHA256SUMS", "checksums"]

SHA256SUMS = Path(__file__).with_name("SHA256SUMS")
_RAW = "https://raw.githubusercontent.com/"


def checksums() -> dict[str, str]:
    """``{relative path: sha256}`` read from :data:`SHA256SUMS`."""
    sums = {}
    for line in SHA256SUMS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            sums[path.strip()] = digest
    return sums


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes
    ----------
    path : where it lies in a data folder, e.g. ``"misfitting/scaling_results.csv"``; the bare
        file name (``"scaling_results.csv"``) is accepted too.
    url : the public source, pinned to a commit.
    sha256 : checksum of the file's bytes.
    published_as : the name the source gives the same bytes, accepted in a data folder too
        (e.g. Epoch's ``svg_extracted_data.csv``).
    source_path, source_sha256 : when the source publishes another format (Parquet for
        ``active_sl``), where the downloaded file is kept and its checksum.
    """

    path: str
    url: str
    sha256: str
    published_as: str = ""
    source_path: str = ""
    source_sha256: str = ""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A published dataset of training runs.

    Attributes
    ----------
    name : registry key, e.g. ``"chinchilla"``.
    files : the files, in the order the reader uses them.
    columns : bayescale's names (``N``, ``D``, ``C``, ``loss``, ``U``, ``group``, ``run``) ->
        the column of the table :func:`bayescale.data.loaders.read_table` builds.
    num_runs : runs loaded with the default options (per group or split below).
    groups : ``{group: runs}`` when the runs come from different corpora (never pooled
        silently: ``load_runs`` asks for ``group=``).
    splits : ``{split: runs}`` when a held-out split exists (``load_runs(name, split="test")``).
    n_convention : ``"total"`` (embeddings counted) or ``"non_embedding"``.
    loss_definition, licence, options : human-readable notes.
    description, citation, provenance : human-readable notes.
    generated : made inside bayescale (no file).
    """

    name: str
    files: tuple[DataFile, ...]
    columns: dict
    num_runs: int
    description: str
    citation: str
    provenance: str
    licence: str = ""
    n_convention: str = "total"
    loss_definition: str = ""
    groups: dict = dataclasses.field(default_factory=dict)
    splits: dict = dataclasses.field(default_factory=dict)
    options: str = ""
    generated: bool = False

    @property
    def filename(self) -> str:
        """The first file's path ('' for a generated dataset)."""
        return self.files[0].path if self.files else ""

    @property
    def url(self) -> str:
        return self.files[0].url if self.files else ""

    @property
    def sha256(self) -> str:
        return self.files[0].sha256 if self.files else ""


def _files(prefix: str, base_url: str, *, rename=lambda name: name, parquet=False):
    """Every file of SHA256SUMS under ``prefix`` (sorted), with its pinned URL."""
    sums = checksums()
    out = []
    for path in sorted(p for p in sums if p.startswith(prefix) and not p.endswith(".parquet")):
        name = path.rsplit("/", 1)[-1]
        if parquet:
            src = path.rsplit(".", 1)[0] + ".parquet"
            out.append(DataFile(path, base_url + rename(name), sums[path],
                                source_path=src, source_sha256=sums[src]))
        else:
            out.append(DataFile(path, base_url + rename(name), sums[path]))
    return tuple(out)


def _active_sl_url(name: str) -> str:  # data_constrained_train.csv -> .../<folder>/train-...
    stem = name.rsplit(".", 1)[0]
    law, split = stem.rsplit("_", 1)
    return f"{law}_scaling_law/{split}-00000-of-00001.parquet"


_SUMS = checksums()
_ACTIVE_SL = (_RAW + "PlanarG/active-sl/e0a58ffde4f6fdfb20880d47d6d180fdbcb1440d/"
              "benchmark/dataset/")
_ACTIVE_SL_CITE = (
    "S. Li, S. Li, H. Lin, W. Sun, A. Talwalkar, Y. Yang, 'Spend Less, Fit Better: "
    "Budget-Efficient Scaling Law Fitting via Active Experiment Selection', "
    "arXiv:2604.22753 (2026)")

DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="chinchilla",
        files=(DataFile(
            "chinchilla_svg_extracted.csv",
            _RAW + "epoch-research/analyzing-chinchilla/"
            "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv",
            _SUMS["chinchilla_svg_extracted.csv"], published_as="svg_extracted_data.csv"),),
        columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss"},
        num_runs=245,
        description=(
            "245 Chinchilla training runs digitised from Hoffmann et al. (2022) Fig. 4 by "
            "Besiroglu et al. (2024). N counts all parameters (embeddings included); "
            "C is training FLOPs; D = C / (6 N); loss in nats/token on MassiveText. "
            "Epoch exclude the 5 highest-loss runs (exclude_top=5)."),
        citation=(
            "T. Besiroglu, E. Erdil, M. Barnett, J. You, 'Chinchilla Scaling: A replication "
            "attempt', arXiv:2404.10102 (2024); data from J. Hoffmann et al., 'Training "
            "Compute-Optimal Large Language Models', arXiv:2203.15556 (2022), Figure 4."),
        provenance=(
            "epoch-research/analyzing-chinchilla@9225883, data/svg_extracted_data.csv "
            "(no licence file: credit Epoch AI and Hoffmann et al.)"),
        licence="none stated (default copyright): credit Epoch AI and Hoffmann et al.",
        loss_definition="MassiveText training loss, nats/token, decoded from the figure's colours",
    ),
    Dataset(
        name="synthetic",
        files=(),
        columns={"N": "N", "D": "D", "loss": "loss"},
        num_runs=90,
        description=(
            "90 runs generated inside bayescale from Hoffmann et al. (2022)'s published law "
            "(E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28) on an Epoch-like design: 9 "
            "isoFLOP budgets from 6e18 to 3e21 FLOPs, 10 model sizes each over N_opt/4..4 N_opt, "
            "normal noise on log loss with sd 0.0075 (the residual sd of Besiroglu et al.'s fit "
            "to the digitised Chinchilla runs), seed 0. Works offline; the truth is known."),
        citation="bayescale.data.simulate.simulate_runs (known law: Hoffmann et al. 2022, eq. 10).",
        provenance="generated by bayescale.data.synthetic.simulate_frame(seed=0); no file",
        licence="generated by bayescale",
        loss_definition="synthetic, nats/token",
        generated=True,
    ),
    Dataset(
        name="gadre2024",
        files=_files("gadre_overtraining/models/", _RAW + "mlfoundations/scaling/"
                     "a003c4913793ac2ae7ef87b28ecb562955d026d5/exp_data/models/"),
        columns={"N": "N", "D": "D", "loss": "loss_c4_val", "group": "group", "run": "run"},
        num_runs=104,
        groups={"C4": 34, "RedPajama": 35, "RefinedWeb": 35},
        description=(
            "104 open_lm runs (10.6M-6.9B parameters, 5-640 tokens per parameter), one per "
            "model JSON, trained on three corpora (groups C4, RedPajama, RefinedWeb) and "
            "evaluated at the end of training. N = params counts the untied input embedding "
            "(N_non_embedding = params_no_embed is also a column); D = tokens; the default loss "
            "is C4 validation (the repository's default)."),
        citation=(
            "S. Y. Gadre et al., 'Language models scale reliably with over-training and on "
            "downstream tasks', arXiv:2403.08540 (2024)."),
        provenance="mlfoundations/scaling@a003c49, exp_data/models/*.json (104 files, MIT)",
        licence="MIT (Copyright (c) 2024 mlfoundations)",
        loss_definition=(
            "C4-validation cross-entropy, nats/token (column loss_c4_val); the other "
            "evaluations are columns loss_openlm, loss_paloma_c4_en, "
            "loss_paloma_dolma_100_programing_languages, loss_paloma_falcon_refinedweb, "
            "loss_paloma_ptb, loss_paloma_redpajama, loss_de_en: select one with loss=..."),
        options="group='C4' | 'RedPajama' | 'RefinedWeb' (required); loss='loss_paloma_ptb' etc.; "
                "N='N_non_embedding'",
    ),
    Dataset(
        name="misfitting",
        files=_files("misfitting/scaling_results_last_ckpt_only", _RAW + "hadasah/scaling_laws/"
                     "1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1/data/"),
        columns={"N": "N", "D": "D", "loss": "loss", "run": "run"},
        num_runs=81,
        description=(
            "Final checkpoints of 261 open_lm runs on FineWeb (11 sizes, 12M-1B non-embedding, "
            "several peak learning rates). By default the best learning rate per (N, D) cell is "
            "kept (81 runs); best_per_cell=False keeps every learning rate (240 runs after "
            "dropping 21 rows that repeat an earlier row's N, D and loss). N counts input and "
            "output embeddings (N_non_embedding is a column); loss is C4 validation, nats/token."),
        citation=(
            "M. Li, S. Kudugunta, L. Zettlemoyer, '(Mis)Fitting Scaling Laws: A Survey of Scaling "
            "Law Fitting Techniques in Deep Learning', ICLR 2025, arXiv:2502.18969."),
        provenance="hadasah/scaling_laws@1f3708c, data/scaling_results_last_ckpt_only.csv",
        licence="none stated (default copyright): cite the paper",
        loss_definition="C4 validation cross-entropy, nats/token",
        options="best_per_cell=False (every learning rate); N='N_non_embedding'",
    ),
    Dataset(
        name="misfitting_checkpoints",
        files=_files("misfitting/scaling_results.csv", _RAW + "hadasah/scaling_laws/"
                     "1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1/data/"),
        columns={"N": "N", "D": "D", "loss": "loss", "run": "run"},
        num_runs=4843,
        description=(
            "Every evaluated checkpoint (4,852 rows) of the misfitting runs, with run ids "
            "(sweep/model/lr/steps); intermediate checkpoints are on a decaying schedule, not "
            "end-of-schedule points. 9 rows that repeat a row of the same run are dropped. "
            "Rows of one run are not independent: fit them with a run-aware model."),
        citation=(
            "M. Li, S. Kudugunta, L. Zettlemoyer, '(Mis)Fitting Scaling Laws', ICLR 2025, "
            "arXiv:2502.18969."),
        provenance="hadasah/scaling_laws@1f3708c, data/scaling_results.csv",
        licence="none stated (default copyright): cite the paper",
        loss_definition="C4 validation cross-entropy, nats/token",
        options="N='N_non_embedding'",
    ),
    Dataset(
        name="marin_isoflop",
        files=_files("marin_isoflop/", _RAW + "Open-Athena/scaling-law-analysis/"
                     "3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc/data/isoflops/extract/"
                     "marin_202603/raw/"),
        columns={"N": "N", "D": "D", "loss": "loss", "group": "group", "run": "run"},
        num_runs=258,
        groups={"comma": 85, "dclm": 85, "nemotron": 88},
        description=(
            "IsoFLOP sweeps of Llama-style decoders (156M-11.8B parameters) on three corpora "
            "(groups comma, dclm, nemotron). N counts untied input and output embeddings (128k "
            "vocabulary); D = throughput/total_tokens; loss = Paloma macro-average. The budget "
            "in a run's name is about 2ND (forward only; the logged FLOPs are 3x it, about "
            "6ND), kept as column C_name; the 'validation-optimal' runs (7 comma, 8 nemotron), "
            "whose name budget is already about 6ND, are dropped as duplicates, as Open-Athena do."),
        citation=(
            "Marin community, 'Scaling Ladders' W&B report (2026); Open-Athena, "
            "'scaling-law-analysis', GitHub (2026)."),
        provenance="Open-Athena/scaling-law-analysis@3e0656e, data/isoflops/extract/marin_202603/raw",
        licence="none stated (default copyright): credit Marin and Open-Athena",
        loss_definition="Paloma macro-averaged cross-entropy, nats/token (Llama-3 tokenizer)",
        options="group='comma' | 'dclm' | 'nemotron' (required)",
    ),
    Dataset(
        name="steplaw",
        files=_files("steplaw/", _RAW + "step-law/steplaw/"
                     "32a8f4cc50247695fb56cc6c9117abdf67c97763/data/"),
        columns={"N": "N_non_embedding", "D": "D", "loss": "loss", "run": "run"},
        num_runs=17,
        n_convention="non_embedding",
        description=(
            "1,911 dense runs over a learning-rate x batch-size grid at 17 (N, D) cells (5 sizes, "
            "215M-1.07B non-embedding parameters). By default the best (lr, bs) per cell (17 "
            "runs); best_per_cell=False gives the full grid. N is non-embedding "
            "(numl (4 h^2 + 3 h ffnh)); loss is the smoothed final training loss."),
        citation=(
            "H. Li et al., 'Predictable Scale: Part I - Optimal Hyperparameter Scaling Law in "
            "Large Language Model Pretraining', arXiv:2503.04715 (2025)."),
        provenance="step-law/steplaw@32a8f4c, data/dense_lr_bs_loss.csv",
        licence="none stated (default copyright): cite the paper",
        loss_definition="smoothed final training loss ('smooth loss'), nats/token; own tokenizer",
        options="best_per_cell=False (the full lr x bs grid, 1911 runs)",
    ),
    Dataset(
        name="data_constrained",
        files=_files("active_sl/data_constrained_", _ACTIVE_SL, rename=_active_sl_url,
                     parquet=True),
        columns={"N": "params", "D": "tokens", "U": "unique_tokens", "loss": "loss"},
        num_runs=161,
        splits={"train": 161, "test": 21},
        description=(
            "Muennighoff et al.'s data-constrained runs as selected by Li et al. (2026): N "
            "(7.1M-8.7B), D (tokens seen, repeats included) and U (unique tokens; D/U epochs). "
            "split='train' (161 runs, the default) or split='test' (21 larger runs, held out)."),
        citation=(
            _ACTIVE_SL_CITE + "; runs from N. Muennighoff et al., 'Scaling Data-Constrained "
            "Language Models', NeurIPS 2023, arXiv:2305.16264."),
        provenance="PlanarG/active-sl@e0a58ff, benchmark/dataset/data_constrained_scaling_law "
                   "(Parquet; the shared copy is converted to CSV)",
        licence="CC-BY-4.0 (cite Li et al. 2026 and Muennighoff et al. 2023)",
        loss_definition="final validation loss, nats/token",
        options="split='test' (held-out larger runs)",
    ),
    Dataset(
        name="farseer",
        files=_files("active_sl/farseer_", _ACTIVE_SL, rename=_active_sl_url, parquet=True),
        columns={"N": "N", "D": "D", "loss": "loss"},
        num_runs=400,
        splits={"train": 400, "test": 7},
        description=(
            "Farseer dense pre-training runs as selected by Li et al. (2026): N 1e8-6.4e9, D "
            "1e9-5.1e11. The loss (0.44-0.71) is not nats/token of a standard tokenizer (likely "
            "per byte): compare only within this dataset. split='train' (404 rows, of which 4 "
            "repeat an earlier row exactly and are dropped: 400 runs; the default) or "
            "split='test' (7 larger runs, held out). Fit it with law='farseer' (--law farseer): "
            "the Chinchilla form predicts the test split with R^2 < 0, the Farseer law 0.93."),
        citation=(_ACTIVE_SL_CITE + "; runs from 'Farseer: A Refined Scaling Law in Large "
                  "Language Models' (2025)."),
        provenance="PlanarG/active-sl@e0a58ff, benchmark/dataset/farseer_scaling_law "
                   "(Parquet; the shared copy is converted to CSV)",
        licence="CC-BY-4.0 (cite Li et al. 2026 and the Farseer paper)",
        loss_definition="unknown unit (0.44-0.71; likely per byte)",
        n_convention="not stated",
        options="split='test' (held-out larger runs)",
    ),
)}
