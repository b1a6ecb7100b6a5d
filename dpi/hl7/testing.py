"""Synthetic HL7 v2.5 messages (IHE PAM France shapes) for tests and benchmarks, and an MLLP client."""

from __future__ import annotations

import itertools
import socket
from datetime import datetime

from dpi.hl7.mllp import END, START, frame

_ids = itertools.count(1)


def ts(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def msh(
    event: str,
    control_id: str | None = None,
    *,
    code: str = "ADT",
    structure: str = "",
    when: str = "",
    version: str = "2.5",
) -> str:
    control_id = control_id or f"MSG{next(_ids):08d}"
    kind = f"{code}^{event}" + (f"^{structure}" if structure else "")
    stamp = when or "20260315080000"
    return f"MSH|^~\\&|GAM|CHU-TEST|DPI|CHU-TEST|{stamp}||{kind}|{control_id}|P|{version}^FRA^2.11|||||FRA|8859/1"


def pid(
    ipp: str,
    family: str = "MARTIN",
    given: str = "Jeanne",
    birth: str = "19800512",
    sex: str = "F",
    status: str = "VALI",
    usual: str = "",
    extra_given: str = "",
) -> str:
    names = f"{family}^{given}^{extra_given}^^^^L" + (f"~{usual}^{given}^^^^^D" if usual else "")
    fields = [
        "PID",
        "1",
        "",
        f"{ipp}^^^CHU-TEST&1.2.250.1.71.4.2.7&ISO^PI",
        "",
        names,
        "",
        birth,
        sex,
        "",
        "",
        "12 rue des Lilas^^Lyon^^69003^FRA^H",
        "",
        "0601020304^PRN^PH",
    ]
    fields += [""] * (32 - len(fields)) + [status]
    return "|".join(fields)


def pv1(visit: str, unit: str = "", patient_class: str = "I", admit: str = "", discharge: str = "") -> str:
    fields = ["PV1", "1", patient_class, f"{unit}^^^CHU-TEST" if unit else ""] + [""] * 15
    fields.append(f"{visit}^^^CHU-TEST^VN")  # PV1-19
    fields += [""] * (44 - len(fields)) + [admit, discharge]
    return "|".join(fields)


def adt(
    event: str,
    ipp: str,
    *,
    visit: str = "",
    unit: str = "",
    when: str = "20260315080000",
    control_id: str | None = None,
    patient_class: str = "I",
    **identity,
) -> str:
    segments = [msh(event, control_id, when=when), f"EVN|{event}|{when}||||{when}", pid(ipp, **identity)]
    if event not in ("A28", "A31", "A40") or visit:
        segments.append(pv1(visit, unit, patient_class))
    if event in ("A01", "A02", "A03", "A04", "A06", "A07", "A11", "A12", "A13", "A21", "A22"):
        segments.append(f"ZBE|MVT{next(_ids)}^CHU-TEST|{when}||INSERT|N")
    return "\r".join(segments) + "\r"


def merge(
    kept_ipp: str, merged_ipp: str, *, when: str = "20260315080000", control_id: str | None = None, **identity
) -> str:
    return (
        "\r".join(
            [
                msh("A40", control_id, structure="ADT_A39", when=when),
                f"EVN|A40|{when}",
                pid(kept_ipp, **identity),
                f"MRG|{merged_ipp}^^^CHU-TEST^PI",
            ]
        )
        + "\r"
    )


def oru(
    ipp: str,
    results: list[tuple[str, str, str, str, str, str]],
    *,
    visit: str = "",
    when: str = "20260315090000",
    control_id: str | None = None,
    status: str = "F",
) -> str:
    """results: (LOINC, label, value type, value, unit, reference range)."""
    segments = [msh("R01", control_id, code="ORU", structure="ORU_R01", when=when), pid(ipp)]
    if visit:
        segments.append(pv1(visit))
    segments.append(f"OBR|1||LAB{next(_ids)}|BIO^Bilan biologique|||{when}")
    for n, (loinc, label, kind, value, unit, ref) in enumerate(results, start=1):
        segments.append(f"OBX|{n}|{kind}|{loinc}^{label}^LN||{value}|{unit}|{ref}||||{status}|||{when}")
    return "\r".join(segments) + "\r"


class MllpClient:
    """Sends framed messages on one TCP connection and reads each acknowledgement."""

    def __init__(self, host: str, port: int, timeout: float = 60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_ack(self) -> str:
        while END not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        end = self.buffer.index(END)
        start = self.buffer.index(START)
        payload, self.buffer = self.buffer[start + 1 : end], self.buffer[end + 2 :]
        return payload.decode("latin-1")

    def send(self, message: str) -> str:
        self.send_raw(frame(message, "latin-1"))
        return self.read_ack()

    def close(self) -> None:
        self.sock.close()


def ack_fields(answer: str) -> dict[str, str]:
    """MSA-1, MSA-2 and the ERR location / code of an acknowledgement."""
    out = {"code": "", "control_id": "", "err_location": "", "err_code": ""}
    for segment in answer.split("\r"):
        f = segment.split("|")
        if f[0] == "MSA":
            out["code"], out["control_id"] = f[1], f[2] if len(f) > 2 else ""
        elif f[0] == "ERR":
            out["err_location"] = f[2] if len(f) > 2 else ""
            out["err_code"] = f[3].split("^")[0] if len(f) > 3 else ""
    return out
