#!/usr/bin/env bash
# Fetch the Noto Color Emoji font (Debian fonts-noto-color-emoji) into data/ without root.
# tokenizer.data.emoji finds it there; as root, `apt-get install fonts-noto-color-emoji` works too.
set -euo pipefail
dest="${1:-data/fonts-noto-color-emoji}"
font="$dest/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
if [ -f "$font" ]; then
  echo "$font"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download fonts-noto-color-emoji >/dev/null 2>&1) || {
  echo "apt-get download fonts-noto-color-emoji failed: run 'apt-get update' first (as root) and retry" >&2; exit 1; }
mkdir -p "$dest"
dpkg -x "$tmp"/fonts-noto-color-emoji_*.deb "$dest"
echo "$font"
