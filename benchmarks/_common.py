"""What benchmark scripts share: the machine description and writing a result page."""
import datetime
import os
import platform
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import paddle
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}, "
            f"Paddle {paddle.__version__} ({paddle.get_device()}), 1-min load average at start {load:.1f}")


def write_page(path, title, command, body):
    today = datetime.date.today().isoformat()
    text = (f"# {title}\n\n- Command: `{command}`\n- Machine: {machine()}\n- Date: {today}\n\n{body}\n")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
