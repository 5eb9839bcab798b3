from cascade_admin.celery import app, beat_schedule


def test_every_periodic_entry_names_a_registered_task():
    app.loader.import_default_modules()
    schedule = beat_schedule()
    assert "labeling.sync" in schedule
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, f"{name}: unknown task {entry['task']}"


def test_the_beat_schedule_is_installed_when_the_app_finalizes():
    app.finalize()
    assert set(app.conf.beat_schedule) == set(beat_schedule())
