#!/usr/bin/env bash
# Fetch the twelve nature photographs of Debian's mate-backgrounds into data/ (no root needed).
# They are the training photos of the shipped photo-f8 tokenizer, with scikit-learn's two samples.
set -euo pipefail
dest="${1:-data/mate-backgrounds}"
if [ -d "$dest/usr/share/backgrounds/mate/nature" ]; then
  echo "$dest/usr/share/backgrounds/mate/nature"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download mate-backgrounds >/dev/null 2>&1) || {
  echo "apt-get download mate-backgrounds failed: run 'apt-get update' first (as root) and retry" >&2; exit 1; }
mkdir -p "$dest"
dpkg -x "$tmp"/mate-backgrounds_*.deb "$dest"
echo "$dest/usr/share/backgrounds/mate/nature"
