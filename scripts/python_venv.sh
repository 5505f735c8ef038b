# Sourced by scripts/setup.sh and deploy/install.sh.
# python_venv VENV PYTHON REQUIREMENTS: make the virtualenv VENV (with PYTHON) hold the packages the
# text REQUIREMENTS pins, once per change of that text or of PYTHON's version. Under a lock, so that
# two set-ups at once (suites side by side) share one venv; a venv whose install was cut short is
# installed again (its stamp is written last).
python_venv() {
    local venv="$1" python="$2" wanted="$3"
    local sum; sum="$(printf '%s\n%s' "$wanted" "$("$python" --version)" | sha256sum | cut -d' ' -f1)"
    mkdir -p "$(dirname "$venv")"
    (
        flock 9
        if [ "$(cat "$venv/.vmsite-requirements" 2>/dev/null)" != "$sum" ]; then
            printf '\033[1m==> %s\033[0m\n' "Python packages into $venv"
            [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
            "$venv/bin/pip" install -q --upgrade pip
            printf '%s\n' "$wanted" > "$venv/requirements.txt"
            "$venv/bin/pip" install -q -r "$venv/requirements.txt"
            echo "$sum" > "$venv/.vmsite-requirements"
        fi
    ) 9>"$venv.lock"
}
