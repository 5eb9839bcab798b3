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


def test_a_late_acknowledged_task_of_a_dead_worker_comes_back_within_minutes():
    from cascade_admin.celery import app

    assert app.conf.task_acks_late is True
    assert 60 <= app.conf.broker_transport_options["visibility_timeout"] <= 600
