"""The order `make test` hands files to its workers in (tests/scheduling.py)."""
import json

from scripts.test_durations import file_seconds, median_seconds
from tests.scheduling import plan


def test_each_worker_gets_whole_files_longest_first_and_the_lightest_worker_the_next():
    collection = ["t/a.py::x", "t/a.py::y", "t/b.py::x", "t/c.py::x", "t/c.py::y", "t/c.py::z", "t/d.py::x"]
    seconds = {"t/a.py": 10, "t/b.py": 30, "t/c.py": 25, "t/d.py": 1}
    queues = plan(collection, 2, seconds)
    assert [[collection[index] for index in queue] for queue in queues] == [
        ["t/b.py::x", "t/d.py::x"],  # 30 s, then 1 s once the other has 35 s
        ["t/c.py::x", "t/c.py::y", "t/c.py::z", "t/a.py::x", "t/a.py::y"],  # 25 s, then 10 s
    ]


def test_a_file_without_a_recorded_time_counts_its_tests_at_the_median_second_per_test():
    collection = ["t/new.py::a", "t/new.py::b", "t/new.py::c", "t/old.py::a", "t/short.py::a"]
    seconds = {"t/old.py": 2.5, "t/short.py": 0.5}  # 2.5 and 0.5 s per test: the median is 1.5 s
    queues = plan(collection, 2, seconds)
    assert [collection[queue[0]] for queue in queues] == ["t/new.py::a", "t/old.py::a"]  # 4.5 s, then 2.5 s
    assert [collection[index] for index in queues[1]] == ["t/old.py::a", "t/short.py::a"]


def test_the_durations_are_read_per_file_from_a_junit_report(tmp_path):
    report = tmp_path / "suite.xml"
    report.write_text("""<testsuites><testsuite>
      <testcase classname="tests.hosts.test_a" name="test_one" time="1.25"/>
      <testcase classname="tests.hosts.test_a" name="test_two[x]" time="2.5"/>
      <testcase classname="tests.test_b.TestGroup" name="test_three" time="4"/>
    </testsuite></testsuites>""")
    assert file_seconds(report) == {"tests/hosts/test_a.py": 3.8, "tests/test_b.py": 4.0}
    assert json.loads(json.dumps(file_seconds(report)))  # what tests/durations.json holds


def test_several_reports_give_each_file_its_median(tmp_path):
    reports = []
    for number, seconds in enumerate((1, 5, 3)):
        report = tmp_path / f"suite{number}.xml"
        extra = '<testcase classname="tests.test_new" name="test_it" time="7"/>' if number == 2 else ""
        report.write_text(f"""<testsuites><testsuite>
          <testcase classname="tests.test_a" name="test_one" time="{seconds}"/>{extra}
        </testsuite></testsuites>""")
        reports.append(report)
    assert median_seconds(reports) == {"tests/test_a.py": 3.0, "tests/test_new.py": 7.0}
