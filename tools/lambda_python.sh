#!/usr/bin/env bash
# A CPython of the Lambda runtime's version (e.g. 3.14) to byte-compile the Lambda layer and the
# agents' dependencies with, started through DIR/python.
#
#   tools/lambda_python.sh DIR VERSION
#
# Where it comes from, first found: LAMBDA_PYTHON_BIN (an interpreter of that version, say
# /opt/homebrew/bin/python3.14); `pythonVERSION` on PATH (Homebrew, pyenv, deadsnakes, uv, python.org
# all install one); else, on a Debian machine, Debian's own packages (below).
#
# Why: Lambda imports a layer from a read-only directory, so a layer without .pyc files is
# compiled from source at every cold start (the layer's boto3 shadows the runtime's compiled
# one): about 1.1 s for the gateway's imports on this machine. Bytecode is the same on every
# architecture but not across Python versions, so it must come from the runtime's version, which
# this machine does not have. Debian's unstable suite carries it: its packages are downloaded (not
# installed) from the mirror this machine's apt already uses, and unpacked with their own C
# library, so nothing on the system changes. `make layer` calls this once; the result is cached.
set -euo pipefail

dir=${1:?usage: tools/lambda_python.sh DIR VERSION}
version=${2:?usage: tools/lambda_python.sh DIR VERSION}
suite=unstable

minor_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

# This machine's own CPython of that version, when it has one: nothing to download.
local_python=${LAMBDA_PYTHON_BIN:-$(command -v "python$version" || true)}
if [ -n "$local_python" ]; then
    actual=$(minor_of "$local_python")
    if [ "$actual" = "$version" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        printf '#!/usr/bin/env bash\n# CPython %s of this machine (tools/lambda_python.sh).\nexec %q "$@"\n' \
            "$version" "$(realpath "$local_python")" > "$dir/python"
        chmod +x "$dir/python"
        echo "Python $("$dir/python" -c 'import sys; print(sys.version.split()[0])') in $dir (this machine's $local_python)"
        exit 0
    fi
    if [ -n "${LAMBDA_PYTHON_BIN:-}" ]; then  # asked for by name: never another one instead
        echo "tools/lambda_python.sh: LAMBDA_PYTHON_BIN=$LAMBDA_PYTHON_BIN is Python ${actual:-that does not run}, not $version" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The Debian archive this machine's apt reads, from its sources (one-line or deb822 format).
archive=$(
    {
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) {print $i; break}}'
        awk '$1 == "URIs:" {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    } | grep -E '^https?://.*/debian/?$' | head -n 1
) || true  # none found (no apt, or not Debian's archive): said below
if [ -z "$archive" ]; then
    echo "tools/lambda_python.sh: no CPython $version here (python$version on PATH, or LAMBDA_PYTHON_BIN) and no" \
        "Debian archive among apt's sources to fetch one from. Install CPython $version (e.g. brew install" \
        "python@$version, uv python install $version, or the deadsnakes PPA on Ubuntu), then run make again." >&2
    exit 1
fi
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $archive $suite main" > "$work/sources.list"
apt_options=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work" -o "Dir::Cache::Archives=$work/archives"
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
apt-get "${apt_options[@]}" -qq update
(cd "$work" && apt-get "${apt_options[@]}" -qq download \
    "python$version-minimal" "libpython$version-minimal" libc6 libexpat1 zlib1g libssl3t64)

rm -rf "$dir"
mkdir -p "$dir/root"
for package in "$work"/*.deb; do
    dpkg-deb -x "$package" "$dir/root"
done
loader=$(find "$dir/root/usr/lib" -maxdepth 2 -name 'ld-linux*.so*' | head -n 1)
libraries=$(dirname "$loader")
cat > "$dir/python" <<EOF
#!/usr/bin/env bash
# CPython $version from Debian $suite, with its own C library (tools/lambda_python.sh).
PYTHONHOME="$(realpath "$dir/root/usr")" exec "$(realpath "$loader")" --library-path "$(realpath "$libraries")" \\
    "$(realpath "$dir/root/usr/bin/python$version")" "\$@"
EOF
chmod +x "$dir/python"
actual=$("$dir/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$actual" != "$version" ]; then
    echo "tools/lambda_python.sh: got Python $actual, not $version" >&2
    exit 1
fi
echo "Python $("$dir/python" -c 'import sys; print(sys.version.split()[0])') in $dir"
