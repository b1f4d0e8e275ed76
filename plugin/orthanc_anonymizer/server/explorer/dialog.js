/*
 * Orthanc Anonymizer: the "Anonymize (DICOM PS3.15)" dialog, the one source shared by both explorers.
 *
 * - Orthanc Explorer (the legacy /app/explorer.html, jQuery 1.7 + jQuery Mobile): explorer.py serves this file and
 *   explorer.js together through orthanc.ExtendOrthancExplorer; explorer.js opens the dialog over the page.
 * - Orthanc Explorer 2 (and anyone else): the plugin's own page /anonymizer/ui/anonymize.html loads this file and
 *   page.js, with the jQuery Orthanc serves for its explorer; the dialog is the page's body.
 *
 * Every URL is relative to the page that loaded this file (configure({root}) gives the way up to Orthanc's root), so
 * both keep working under a reverse-proxy path prefix. Requests are same-origin jQuery XHRs: the browser sends its own
 * credentials (HTTP Basic with AuthenticationEnabled) and $.ajaxSetup's headers (the explorer's ?token= support).
 * Values of attributes are never requested nor shown: the preview lists tags and what happens to them. Under Clean
 * Pixel Data it shows the boxes' count and the plugin's before/after picture of one frame, which Orthanc answers only
 * to the users allowed original values (dry-run-values).
 */
window.OrthancAnonymizer = (function ($) {
  'use strict';

  /* Replaced by explorer.py with the PS3.15 options, their titles and one-line explanations (profiles.Option). */
  var OPTIONS = [] /*@@ANONYMIZER_OPTIONS@@*/;

  var LEVELS = {
    patient: { route: 'patients', word: 'patient', plural: 'patients', name: 'Patient' },
    study: { route: 'studies', word: 'study', plural: 'studies', name: 'Study' },
    series: { route: 'series', word: 'series', plural: 'series', name: 'Series' }
  };
  var PAGE_OF_LEVEL = { Patient: 'patient', Study: 'study', Series: 'series', Instance: 'instance' };
  var POLL_MS = 400;

  /* What an action code of a change record means, in words, and the column it is counted in. */
  var ACTIONS = {
    X: { category: 'removed', words: 'the attribute is removed' },
    Z: { category: 'emptied', words: 'kept, with an empty value' },
    D: { category: 'replaced', words: 'by a dummy value of the same kind' },
    U: { category: 'replaced', words: 'by a new UID derived with the site key' },
    P: { category: 'replaced', words: 'by a pseudonym, or the value you gave' },
    S: { category: 'replaced', words: 'by the date, shifted' },
    C: { category: 'cleaned', words: 'identifying parts of the value removed' },
    K: { category: 'kept', words: 'the original value' }
  };
  var CATEGORY_ORDER = ['replaced', 'removed', 'emptied', 'cleaned', 'kept'];

  /* The way from the page's folder up to Orthanc's root: "../" from ".../app/explorer.html", "../../" from
     ".../anonymizer/ui/anonymize.html" (configure). */
  var rootFromPage = '../';

  function configure(settings) {
    rootFromPage = settings.root;
  }

  /* The server root, from the page's own location: ".../app/explorer.html" -> ".../app/../". */
  function apiRoot() {
    var path = window.location.pathname;
    return path.substring(0, path.lastIndexOf('/') + 1) + rootFromPage;
  }

  /* ``path`` is relative to Orthanc's root: "anonymizer/profiles". */
  function api(path) {
    return apiRoot() + path;
  }


  function request(method, path, body) {
    var settings = {
      url: api(path),
      type: method,
      dataType: 'json',
      cache: false
    };
    if (body !== undefined) {
      settings.data = JSON.stringify(body);
      settings.contentType = 'application/json';
    }
    return $.ajax(settings);
  }

  /* An HTTP failure in words a radiographer can act on. */
  function describeFailure(xhr, what) {
    var message = '';
    try {
      message = JSON.parse(xhr.responseText).Message || '';
    } catch (ignored) {
      message = '';
    }
    var detail = message ? ': ' + message : '';
    switch (xhr.status) {
      case 0:
        return 'Orthanc could not be reached while ' + what + '. Check the network and try again.';
      case 400:
        return 'Orthanc refused these settings' + detail + '.';
      case 401:
      case 403:
        return 'Orthanc refused access while ' + what + ' (HTTP ' + xhr.status + '): log in again or ask for the rights.';
      case 404:
        return message ? 'Not found' + detail + '.' :
          'Not found while ' + what + ': is the anonymizer plugin loaded in this Orthanc?';
      case 503:
        return 'Orthanc is busy' + detail + '. Try again in a moment.';
      default:
        return 'The anonymizer failed while ' + what + ' (HTTP ' + xhr.status + ')' + detail + '.';
    }
  }

  /* ------------------------------------------------------------------------------------------------ styles */

  function installStyle() {
    if ($('#oa-style').length) {
      return;
    }
    $('<style id="oa-style">').text([
      '.oa-overlay { position: fixed; top: 0; left: 0; right: 0; bottom: 0; z-index: 2000;',
      '  background: rgba(0, 0, 0, 0.45); overflow-y: auto; }',
      '.oa-dialog { max-width: 760px; margin: 30px auto; padding: 0 !important; text-align: left; }',
      '.oa-dialog .oa-title { margin: 0; padding: 10px 40px 10px 14px; font-size: 16px; position: relative; }',
      '.oa-dialog .oa-close { position: absolute; right: 10px; top: 6px; font-size: 20px; cursor: pointer;',
      '  color: inherit; text-decoration: none; }',
      '.oa-body { padding: 8px 16px 14px 16px; }',
      '.oa-body fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 10px 0; padding: 6px 12px; }',
      '.oa-body legend { font-weight: bold; padding: 0 4px; }',
      '.oa-body select, .oa-body input[type=text] { font-size: 14px; padding: 4px; }',
      '.oa-profile-description { color: #555; font-size: 13px; margin: 4px 0; }',
      '.oa-option { display: block; margin: 4px 0; cursor: pointer; }',
      '.oa-option input { margin-right: 6px; vertical-align: top; }',
      '.oa-option .oa-option-title { font-weight: bold; font-size: 14px; }',
      '.oa-option .oa-option-name { color: #777; font-family: monospace; font-size: 12px; margin-left: 4px; }',
      '.oa-option .oa-explanation { display: block; margin-left: 24px; color: #555; font-size: 12px; }',
      '.oa-option.oa-from-profile .oa-option-title:after { content: " (part of the profile)"; font-weight: normal;',
      '  color: #777; }',
      '.oa-field { display: inline-block; margin: 4px 20px 4px 0; }',
      '.oa-field label { display: block; font-size: 13px; }',
      '.oa-hint { color: #555; font-size: 12px; }',
      '.oa-warning { color: #a00; font-size: 13px; }',
      '.oa-buttons { margin-top: 8px; }',
      '.oa-status { margin: 8px 0; font-size: 14px; }',
      '.oa-status.oa-error { color: #a00; font-weight: bold; white-space: pre-line; }',
      '.oa-progress { height: 14px; background: #ddd; border-radius: 7px; overflow: hidden; margin: 6px 0; }',
      '.oa-progress-bar { height: 100%; width: 0; background: #3b8fd0; transition: width 0.3s; }',
      '.oa-preview { max-height: 320px; overflow-y: auto; margin-top: 6px; }',
      '.oa-preview table { border-collapse: collapse; width: 100%; font-size: 13px; }',
      '.oa-preview th, .oa-preview td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; }',
      '.oa-preview th { background: #eee; position: sticky; top: 0; }',
      '.oa-preview td.oa-tag { font-family: monospace; white-space: nowrap; }',
      '.oa-badge { display: inline-block; min-width: 64px; padding: 1px 6px; border-radius: 8px; color: #fff;',
      '  font-size: 12px; text-align: center; }',
      '.oa-badge-replaced { background: #2a6fb0; } .oa-badge-removed { background: #b03a2a; }',
      '.oa-badge-emptied { background: #c07a00; } .oa-badge-cleaned { background: #6a4bb0; }',
      '.oa-badge-kept { background: #4a8a3a; }',
      '.oa-summary .oa-count { margin-right: 14px; white-space: nowrap; }',
      '.oa-links .oa-profile-used { font-size: 12px; white-space: normal; }',
      '.oa-links .ui-btn-text a.ui-link-inherit { white-space: normal; }'
    ].join('\n')).appendTo('head');
  }

  /* ------------------------------------------------------------------------------------------------ dialog */

  var dialog = null;  // the open dialog's state

  function closeDialog() {
    if (dialog) {
      dialog.closed = true;
      dialog.overlay.remove();
      dialog = null;
    }
  }

  function setStatus(text, isError) {
    dialog.status.text(text).toggleClass('oa-error', !!isError).show();
  }

  function setProgress(percent) {
    if (percent === null) {
      dialog.progress.hide();
      return;
    }
    dialog.progress.show().attr('aria-valuenow', percent);
    dialog.progress.children('.oa-progress-bar').css('width', percent + '%');
  }

  function setBusy(busy) {
    dialog.busy = busy;
    dialog.overlay.find('.oa-action').toggleClass('ui-disabled', busy);
  }

  function chosenSettings() {
    var body = {
      Profile: dialog.profileSelect.val(),
      Options: [],
      InPlace: !dialog.keepOriginal.is(':checked')
    };
    dialog.overlay.find('input.oa-option-box:checked').each(function () {
      body.Options.push($(this).val());
    });
    var name = $.trim(dialog.patientName.val());
    var id = $.trim(dialog.patientId.val());
    if (name) {
      body.PatientName = name;
    }
    if (id) {
      body.PatientID = id;
    }
    var project = $.trim(dialog.project.val());
    if (project) {
      body.Project = project;
    }
    return body;
  }

  /* Tick and lock the options the chosen profile applies anyway (the request only adds options to a profile). */
  function showProfile() {
    var profile = dialog.profiles[dialog.profileSelect.val()] || { Options: [], Description: '' };
    dialog.profileDescription.text(profile.Description || '');
    dialog.overlay.find('input.oa-option-box').each(function () {
      var box = $(this);
      var inProfile = $.inArray(box.val(), profile.Options || []) >= 0;
      var wasLocked = box.prop('disabled');
      box.prop('disabled', inProfile);
      if (inProfile) {
        box.prop('checked', true);
      } else if (wasLocked) {
        box.prop('checked', false);
      }
      box.closest('label').toggleClass('oa-from-profile', inProfile);
    });
  }

  /* "this study", or "2 studies" for a batch. */
  function resourceWords(resource) {
    return resource.uuids ? resource.uuids.length + ' ' + resource.level.plural : 'this ' + resource.level.word;
  }

  function buildDialog(resource, host) {
    // Over the page (the legacy explorer), or the body of host.container (the plugin's own page) with no way to close.
    var embedded = !!host.container;
    var overlay = $('<div id="oa-dialog">').addClass(embedded ? 'oa-embedded' : 'oa-overlay');
    var box = $('<div class="oa-dialog ui-body ui-body-c ui-corner-all ui-shadow" role="dialog">')
      .attr('aria-modal', embedded ? 'false' : 'true')
      .attr('aria-labelledby', 'oa-title')
      .appendTo(overlay);
    var title = $('<h3 class="oa-title ui-bar ui-bar-a ui-corner-top" id="oa-title">')
      .text('Anonymize ' + resourceWords(resource) + ' (DICOM PS3.15)')
      .appendTo(box);
    if (!embedded) {
      $('<a href="#" class="oa-close" title="Close" aria-label="Close">&times;</a>').appendTo(title);
    }
    var body = $('<div class="oa-body">').appendTo(box);

    $('<p class="oa-hint">').text(
      (resource.uuids ? 'A de-identified copy of each is made by the PS3.15 anonymizer plugin, in one job, and linked ' +
        'to its original' : 'A de-identified copy is made by the PS3.15 anonymizer plugin and linked to this ' +
        resource.level.word) + '. Choose a profile and options, preview what changes, then anonymize.'
    ).appendTo(body);

    var profileSet = $('<fieldset>').append($('<legend>').text('Profile')).appendTo(body);
    var profileSelect = $('<select id="oa-profile" data-role="none" aria-label="Profile">').appendTo(profileSet);
    var profileDescription = $('<p class="oa-profile-description" id="oa-profile-description">').appendTo(profileSet);

    var optionSet = $('<fieldset id="oa-options">').append($('<legend>').text('Options (PS3.15 Table E.1-1)'))
      .appendTo(body);
    $.each(OPTIONS, function (i, option) {
      var label = $('<label class="oa-option">').attr('for', 'oa-option-' + option.Name);
      $('<input type="checkbox" class="oa-option-box" data-role="none">')
        .attr('id', 'oa-option-' + option.Name).val(option.Name).appendTo(label);
      $('<span class="oa-option-title">').text(option.Title).appendTo(label);
      $('<span class="oa-option-name">').text(option.Name).appendTo(label);
      $('<span class="oa-explanation">').text(option.Explanation).appendTo(label);
      label.appendTo(optionSet);
    });

    var patientSet = $('<fieldset>').append($('<legend>').text('Patient')).appendTo(body);
    var nameField = $('<div class="oa-field">').appendTo(patientSet);
    $('<label for="oa-patient-name">').text('New PatientName (optional)').appendTo(nameField);
    var patientName = $('<input type="text" id="oa-patient-name" data-role="none" size="28">')
      .attr('placeholder', 'empty: a keyed pseudonym').appendTo(nameField);
    var idField = $('<div class="oa-field">').appendTo(patientSet);
    $('<label for="oa-patient-id">').text('New PatientID (optional)').appendTo(idField);
    var patientId = $('<input type="text" id="oa-patient-id" data-role="none" size="20">')
      .attr('placeholder', 'empty: a keyed pseudonym').appendTo(idField);
    var projectField = $('<div class="oa-field">').appendTo(patientSet);
    $('<label for="oa-project">').text('Project (optional)').appendTo(projectField);
    var project = $('<input type="text" id="oa-project" data-role="none" size="20" maxlength="64">')
      .attr('placeholder', 'copies for two projects share no UID').appendTo(projectField);
    var keepLabel = $('<label class="oa-option" for="oa-keep-original">').appendTo(patientSet);
    var keepOriginal = $('<input type="checkbox" id="oa-keep-original" data-role="none" checked>').appendTo(keepLabel);
    $('<span class="oa-option-title">').text('Keep original').appendTo(keepLabel);
    var keepWarning = $('<span class="oa-explanation oa-warning">')
      .text('Unticked: the original is deleted once every anonymized instance is stored and verified.')
      .hide().appendTo(keepLabel);

    var buttons = $('<div class="oa-buttons">').appendTo(body);
    $('<a href="#" id="oa-preview" class="oa-action" role="button" data-role="button" data-inline="true" data-icon="search"' +
      ' data-theme="c">Preview</a>').appendTo(buttons);
    $('<a href="#" id="oa-run" class="oa-action" role="button" data-role="button" data-inline="true" data-icon="check"' +
      ' data-theme="b">Anonymize</a>').appendTo(buttons);
    if (!embedded) {
      $('<a href="#" id="oa-cancel" role="button" data-role="button" data-inline="true" data-theme="c">Cancel</a>')
        .appendTo(buttons);
    }

    var progress = $('<div class="oa-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100">')
      .append('<div class="oa-progress-bar">').hide().appendTo(body);
    var status = $('<div class="oa-status" id="oa-status" role="status" aria-live="polite">').hide().appendTo(body);
    var preview = $('<div class="oa-preview-area" id="oa-preview-area">').appendTo(body);

    overlay.appendTo(host.container || 'body');
    if ($.fn.button) {
      buttons.children('a').button();  // the explorer's (jQuery Mobile) look; the form fields stay native
    }

    dialog = {
      resource: resource,
      host: host,
      embedded: embedded,
      overlay: overlay,
      profileSelect: profileSelect,
      profileDescription: profileDescription,
      patientName: patientName,
      patientId: patientId,
      project: project,
      keepOriginal: keepOriginal,
      progress: progress,
      status: status,
      preview: preview,
      profiles: {},
      busy: false,
      closed: false
    };

    overlay.on('click', '.oa-close, #oa-cancel', function (event) {
      event.preventDefault();
      closeDialog();
    });
    overlay.on('click', function (event) {
      if (event.target === overlay[0] && !dialog.busy && !embedded) {
        closeDialog();
      }
    });
    profileSelect.on('change', showProfile);
    keepOriginal.on('change', function () {
      keepWarning.toggle(!keepOriginal.is(':checked'));
    });
    overlay.on('click', '#oa-preview', function (event) {
      event.preventDefault();
      if (!dialog.busy) {
        runPreview();
      }
    });
    overlay.on('click', '#oa-run', function (event) {
      event.preventDefault();
      if (!dialog.busy) {
        runAnonymize();
      }
    });
  }

  /* ``resource``: {level: LEVELS.x, page, uuid}, or {level, page, uuids: [...]} for one batch job over several.
     ``host``: {container} to embed the dialog in (otherwise it opens over the page); {openCopy(page, uuid)} to go to a
     single complete copy at once; {copyLinks(page, copy, source, area)} to append the ways to a copy to ``area``. */
  function openDialog(resource, host) {
    closeDialog();
    installStyle();
    buildDialog(resource, host);
    var state = dialog;
    setBusy(true);
    setStatus('Loading the profiles…');
    request('GET', 'anonymizer/profiles').done(function (profiles) {
      if (state.closed) {
        return;
      }
      $.each(profiles, function (i, profile) {
        state.profiles[profile.Name] = profile;
        $('<option>').val(profile.Name).text(profile.Name).appendTo(state.profileSelect);
      });
      showProfile();
      state.status.hide();
      setBusy(false);
      state.profileSelect.focus();
    }).fail(function (xhr) {
      if (!state.closed) {
        setStatus(describeFailure(xhr, 'loading the profiles'), true);
      }
    });
  }

  /* ------------------------------------------------------------------------------------------------ jobs */

  /* Start an asynchronous job and follow it; onDone(job record) when it succeeds, failures shown in words. */
  function runJob(body, what, onDone) {
    var state = dialog;
    var resource = state.resource;
    body.Asynchronous = true;
    setBusy(true);
    setProgress(0);
    setStatus(what.running + '…');
    var path = 'anonymizer/' + resource.level.route + '/' + encodeURIComponent(resource.uuid);
    if (resource.uuids) {
      path = 'anonymizer/batch';
      body.Level = resource.level.name;
      body.Resources = resource.uuids;
      delete body.Asynchronous;  // a batch is always a job
    }
    request('POST', path, body)
      .done(function (answer) {
        poll(state, answer.Job, what, onDone);
      })
      .fail(function (xhr) {
        if (!state.closed) {
          setProgress(null);
          setBusy(false);
          setStatus(xhr.status === 404 && /unknown resource/.test(xhr.responseText || '') ?
            'This ' + resource.level.word + ' no longer exists in Orthanc: it was deleted meanwhile.' :
            describeFailure(xhr, what.doing), true);
        }
      });
  }

  function poll(state, jobId, what, onDone) {
    if (state.closed) {
      return;
    }
    request('GET', 'anonymizer/jobs/' + encodeURIComponent(jobId)).done(function (job) {
      if (state.closed) {
        return;
      }
      var progress = Math.max(0, Math.min(100, job.Progress || 0));
      setProgress(progress);
      if (job.State === 'Success' || job.State === 'Failure') {
        setBusy(false);
        var failure = jobFailure(job);
        if (failure) {
          setProgress(null);
          setStatus(what.failed + ' ' + failure, true);
        } else {
          setProgress(100);
          onDone(job);
        }
        return;
      }
      setStatus(what.running + '… ' + progress + '%' + (job.State === 'Pending' ? ' (waiting for other jobs)' : ''));
      window.setTimeout(function () {
        poll(state, jobId, what, onDone);
      }, POLL_MS);
    }).fail(function (xhr) {
      if (!state.closed) {
        setBusy(false);
        setProgress(null);
        setStatus(describeFailure(xhr, 'following the job'), true);
      }
    });
  }

  /* Why a finished job gave nothing usable, in words; '' when at least one resource has a result. */
  function jobFailure(job) {
    var results = job.Results || [];
    var errors = job.Errors || [];
    var usable = $.grep(results, function (result) {
      return !result.Error;
    });
    if (usable.length) {
      // A job with some failed instances (or, in a batch, resources) ends as "Failure" with results: the caller says.
      return '';
    }
    if (results.length) {
      return resourceErrors(results).join('\n');
    }
    return errors.length ? errors.join('; ') + '.' : 'The job ended without a result.';
  }

  /* The resources of a job that failed as a whole, in words: one line each (the resource's level and ID only). */
  function resourceErrors(results) {
    var batch = !!dialog.resource.uuids;
    return $.map(results, function (result) {
      if (!result.Error) {
        return null;
      }
      var which = batch ? 'The ' + dialog.resource.level.word + ' ' + String(result.Source).substring(0, 8) + '…' :
        'This ' + dialog.resource.level.word;
      return result.Error === 'unknown resource' ? which + ' no longer exists in Orthanc.' :
        (batch ? which + ': ' : '') + String(result.Error) + '.';
    });
  }

  /* The results of a job as one: instances counted, failed instances and changes put together. */
  function mergedResult(results) {
    var merged = { Instances: 0, Failed: [], Changes: [] };
    $.each(results, function (i, result) {
      merged.Instances += result.Instances || 0;
      merged.Failed = merged.Failed.concat(result.Failed || []);
      merged.Changes = merged.Changes.concat(result.Changes || []);
    });
    return merged;
  }

  /* "2 of 10 instances were not anonymized ..." with the reasons, or ''. */
  function describeFailedInstances(result) {
    var failed = result.Failed || [];
    if (!failed.length) {
      return '';
    }
    var total = failed.length + (result.Instances || 0);
    var reasons = {};
    $.each(failed, function (i, item) {
      reasons[item.Reason] = (reasons[item.Reason] || 0) + 1;
    });
    var lines = [];
    $.each(reasons, function (reason, count) {
      lines.push('• ' + reason + (count > 1 ? ' (' + count + ' instances)' : ''));
    });
    return failed.length + ' of ' + total + ' instances could not be anonymized; their originals are untouched:\n' +
      lines.join('\n');
  }

  /* ------------------------------------------------------------------------------------------------ preview */

  function runPreview() {
    var body = chosenSettings();
    body.DryRun = true;
    delete body.InPlace;
    dialog.preview.empty();
    runJob(body, { running: 'Preparing the preview', doing: 'preparing the preview', failed: 'No preview:' },
      function (job) {
        var result = mergedResult(job.Results);
        showPreview(result);
        setProgress(null);
        var failed = resourceErrors(job.Results).concat(describeFailedInstances(result) || []).join('\n');
        if (failed) {
          setStatus(failed, true);
        } else {
          dialog.status.hide();
        }
      });
  }

  /* One row per attribute and action, counted over the instances; tags and keywords only, never values. An attribute
     touched twice in one instance (emptied by the table, then given the patient pseudonym) counts by its last action. */
  function summarizeChanges(changes) {
    var last = {};
    var seen = [];
    $.each(changes || [], function (i, change) {
      var where = (change.Instance || '') + '|' + change.Path;
      if (!last[where]) {
        seen.push(where);
      }
      last[where] = change;
    });
    var rows = {};
    var order = [];
    $.each(seen, function (i, where) {
      var change = last[where];
      var key = change.Path + '|' + change.Action;
      if (!rows[key]) {
        var action = ACTIONS[change.Action] || { category: 'replaced', words: 'changed (' + change.Action + ')' };
        rows[key] = {
          path: change.Path,
          keyword: change.Keyword || '(unknown attribute)',
          rule: change.Rule,
          category: action.category,
          words: action.words,
          instances: {}
        };
        order.push(key);
      }
      rows[key].instances[change.Instance || ''] = true;
    });
    var list = $.map(order, function (key) {
      return rows[key];
    });
    list.sort(function (a, b) {
      var byCategory = $.inArray(a.category, CATEGORY_ORDER) - $.inArray(b.category, CATEGORY_ORDER);
      return byCategory || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
    });
    return list;
  }

  function showPreview(result) {
    var rows = summarizeChanges(result.Changes);
    var counts = {};
    $.each(rows, function (i, row) {
      counts[row.category] = (counts[row.category] || 0) + 1;
    });
    var area = dialog.preview.empty();
    $('<h4>').text('Preview: what anonymizing would do (' + (result.Instances || 0) + ' instances, nothing stored)')
      .appendTo(area);
    var summary = $('<p class="oa-summary" id="oa-summary">').text('Attributes: ').appendTo(area);
    $.each(CATEGORY_ORDER, function (i, category) {
      $('<span class="oa-count">').append($('<span class="oa-badge">').addClass('oa-badge-' + category).text(category))
        .append(' ' + (counts[category] || 0)).appendTo(summary);
    });
    var scroller = $('<div class="oa-preview">').appendTo(area);
    var table = $('<table id="oa-preview-table">').appendTo(scroller);
    $('<tr>')
      .append($('<th>').text('Attribute'))
      .append($('<th>').text('Tag'))
      .append($('<th>').text('What happens'))
      .append($('<th>').attr('title', 'The action code of PS3.15 Table E.1-1, or of a custom rule').text('Code'))
      .append($('<th>').text('Instances'))
      .appendTo($('<thead>').appendTo(table));
    var tbody = $('<tbody>').appendTo(table);
    $.each(rows, function (i, row) {
      var inside = row.path.indexOf('/') >= 0 ? ' (in a sequence: ' + row.path + ')' : '';
      $('<tr>').attr('data-keyword', row.keyword).attr('data-category', row.category)
        .append($('<td>').text(row.keyword + inside))
        .append($('<td class="oa-tag">').text(row.path.split('/').pop()))
        .append($('<td>')
          .append($('<span class="oa-badge">').addClass('oa-badge-' + row.category).text(row.category))
          .append(' ' + row.words))
        .append($('<td class="oa-tag">').text(row.rule || ''))
        .append($('<td>').text($.map(row.instances, function () {
          return 1;
        }).length))
        .appendTo(tbody);
    });
    if (!rows.length) {
      $('<p>').text('No attribute would change.').appendTo(area);
    }
    showPixelRegions(result.PixelRegions || [], area);
    area[0].scrollIntoView();
  }

  /* Clean Pixel Data's boxes (coordinates only), and a before/after picture of the first frame with any, which the
     plugin renders from the stored instance; it shows original pixels, so Orthanc answers it only to the users
     allowed the dry-run-values route: the others see a sentence instead. */
  function showPixelRegions(regions, area) {
    if (!regions.length) {
      return;
    }
    var instances = {};
    $.each(regions, function (i, region) {
      instances[region.Instance] = true;
    });
    $('<p id="oa-pixel-summary">').text('Pixels: ' + regions.length + ' boxes blacked out in ' +
      $.map(instances, function () { return 1; }).length + ' instances.').appendTo(area);
    var first = regions[0];
    var settings = chosenSettings();
    var query = '?frame=' + (first.Frame || 1) + '&profile=' + encodeURIComponent(settings.Profile || '') +
      '&options=' + encodeURIComponent(settings.Options.join(','));
    var holder = $('<div id="oa-pixel-preview">').appendTo(area);
    var xhr = new XMLHttpRequest();
    xhr.open('GET', api('anonymizer/instances/' + encodeURIComponent(first.Instance) + '/pixel-preview' + query));
    $.each(($.ajaxSettings && $.ajaxSettings.headers) || {}, function (name, value) {
      xhr.setRequestHeader(name, value);
    });
    xhr.responseType = 'blob';
    xhr.onload = function () {
      if (xhr.status === 200) {
        $('<img alt="One frame before and after Clean Pixel Data">').attr('src', window.URL.createObjectURL(xhr.response))
          .appendTo(holder);
      } else {
        holder.text('The before/after picture is kept to the users allowed original values (HTTP ' + xhr.status + ').');
      }
    };
    xhr.send();
  }

  /* ------------------------------------------------------------------------------------------------ anonymize */

  function runAnonymize() {
    var body = chosenSettings();
    dialog.preview.empty();
    runJob(body, { running: 'Anonymizing', doing: 'anonymizing', failed: 'The anonymization failed:' },
      function (job) {
        var host = dialog.host;
        var made = $.grep(job.Results, function (result) {
          return !!result.Resource;
        });
        var result = mergedResult(job.Results);
        var failed = resourceErrors(job.Results).concat(describeFailedInstances(result) || []).join('\n');
        if (!made.length) {
          setStatus('Nothing was stored. ' + (failed || (job.Errors || []).join('; ')), true);
          return;
        }
        var page = PAGE_OF_LEVEL[made[0].Level] || dialog.resource.page;
        var word = LEVELS[page] ? LEVELS[page].word : page;
        if (!failed && made.length === 1 && host.openCopy) {
          setStatus('Done: ' + (result.Instances || 0) + ' instances anonymized. Opening the new ' + word + '…');
          window.setTimeout(function () {
            closeDialog();
            host.openCopy(page, made[0].Resource);
          }, 300);
          return;
        }
        // Some instances are missing from the copy, or the page stays: say so, and let the user open each copy.
        setStatus(failed ? (made.length > 1 ? 'The copies were made, but some are incomplete. ' :
          'The copy was made, but incomplete. ') + failed :
          'Done: ' + (result.Instances || 0) + ' instances anonymized into ' + made.length + ' new ' +
          (made.length > 1 ? LEVELS[page].plural : word) + '.', !!failed);
        var area = dialog.preview.empty();
        $.each(made, function (i, copy) {
          host.copyLinks(page, copy.Resource, copy.Source, area);
        });
      });
  }

  /* ------------------------------------------------------------------------------------------------ links */

  /* What an AnonymizationProfile metadata value says, in words: "Profile basic, options X, Y (PS3.15 2024c)". */
  function describeProfile(text) {
    try {
      var used = JSON.parse(text);
      var words = 'Profile ' + used.Profile;
      words += (used.Options && used.Options.length) ? ', options ' + used.Options.join(', ') : ', no options';
      var rules = used.RuleCount || (used.Rules && used.Rules.length);  /* Rules: a list, in copies made by earlier versions */
      if (rules) {
        words += ', ' + rules + ' custom rules';
      }
      if (used.Edition) {
        words += ' (PS3.15 ' + used.Edition + ')';
      }
      return words;
    } catch (ignored) {
      return 'Profile: ' + text;
    }
  }

  /* A copy as the list shows it: its (anonymized) patient name and what identifies it at its level. */
  function resourceLabel(page, resource) {
    var tags = resource.MainDicomTags || {};
    var patient = resource.PatientMainDicomTags || {};
    var parts = page === 'patient' ? [tags.PatientName, tags.PatientID] :
      page === 'study' ? [patient.PatientName, tags.StudyDescription, formatDate(tags.StudyDate)] :
      [tags.Modality, tags.SeriesDescription, tags.SeriesNumber ? 'series ' + tags.SeriesNumber : ''];
    parts = $.grep(parts, function (part) {
      return !!part;
    });
    return parts.length ? parts.join(' · ') : resource.ID.substring(0, 8) + '…';
  }

  function formatDate(date) {
    return /^\d{8}$/.test(date || '') ? date.substring(0, 4) + '-' + date.substring(4, 6) + '-' + date.substring(6) : '';
  }

  $(document).on('keydown', function (event) {
    if (event.keyCode === 27 && dialog && !dialog.busy && !dialog.embedded) {
      closeDialog();
    }
  });

  return {
    LEVELS: LEVELS,
    configure: configure,
    api: api,
    request: request,
    describeFailure: describeFailure,
    installStyle: installStyle,
    open: openDialog,
    close: closeDialog,
    describeProfile: describeProfile,
    resourceLabel: resourceLabel
  };
}(jQuery));
