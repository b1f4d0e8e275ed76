/*
 * Orthanc Anonymizer: the plugin's own page, /anonymizer/ui/anonymize.html, which Orthanc Explorer 2's buttons open
 * (the shipped configuration's OrthancExplorer2.UiOptions.CustomButtons; OE2 has no JavaScript extension point):
 *   anonymize.html?study=<Orthanc ID>, ?series=<ID>, ?patient=<ID>   one resource
 *   anonymize.html?studies=<ID>,<ID>,...                              the studies selected in OE2's list: one batch job
 * It shows the resource with its original and its copies, and the dialog of dialog.js (the same as in the legacy
 * explorer) as its body; each new copy gets links to Orthanc Explorer 2, to the legacy Orthanc Explorer and to this
 * page for the copy, which links back to the original.
 *
 * URLs are relative to the page (the page is .../anonymizer/ui/, Orthanc's root two folders up), so it works under a
 * reverse-proxy prefix; requests are same-origin jQuery XHRs (dialog.js), sent with the browser's credentials.
 */
(function ($, anonymizer) {
  'use strict';

  var LEVELS = anonymizer.LEVELS;
  var request = anonymizer.request;
  var MAX_LISTED = 50;

  anonymizer.configure({ root: '../../' });

  /* Orthanc Explorer 2 at its default Root, ui/, and the legacy explorer where Orthanc serves it. */
  var OE2_APP = 'ui/app/';
  var EXPLORER = 'app/explorer.html';

  /* What the page was opened for, from its query: {level, page, uuid} or {level, page, uuids}; null when unusable. */
  function requestedResource() {
    var query = {};
    $.each(window.location.search.replace(/^\?/, '').split('&'), function (i, pair) {
      var parts = pair.split('=');
      if (parts[0]) {
        query[decodeURIComponent(parts[0])] = decodeURIComponent((parts[1] || '').replace(/\+/g, ' '));
      }
    });
    if (query.studies !== undefined) {
      var uuids = $.grep(query.studies.split(','), function (uuid) {
        return !!uuid;
      });
      return uuids.length ? { level: LEVELS.study, page: 'study', uuids: uuids } : null;
    }
    var found = null;
    $.each(['patient', 'study', 'series'], function (i, page) {
      if (!found && query[page]) {
        found = { level: LEVELS[page], page: page, uuid: query[page] };
      }
    });
    return found;
  }

  function pageFor(page, uuid) {
    return 'anonymize.html?' + page + '=' + encodeURIComponent(uuid);
  }

  /* Where OE2 shows a resource: its study list filtered on the study (expanded), or on the patient. ``pipe``: the
     explorer's jQuery 1.7 has no chaining ``then``. */
  function oe2Url(page, uuid) {
    var route = LEVELS[page].route + '/' + encodeURIComponent(uuid);
    if (page === 'patient') {
      return request('GET', route).pipe(function (patient) {
        return OE2_APP + 'filtered-studies?PatientID=' + encodeURIComponent(patient.MainDicomTags.PatientID || '');
      });
    }
    return request('GET', page === 'series' ? route + '/study' : route).pipe(function (study) {
      return OE2_APP + 'filtered-studies?StudyInstanceUID=' +
        encodeURIComponent(study.MainDicomTags.StudyInstanceUID || '') + '&expand=' + page;
    });
  }

  /* "Open in Orthanc Explorer 2 · Orthanc Explorer · Anonymizer" for one resource. */
  function openLinks(page, uuid, withPage) {
    var links = $('<span class="oa-open-links">').append('Open in ');
    var oe2 = $('<a class="oa-open-oe2">').text('Orthanc Explorer 2').appendTo(links);
    oe2Url(page, uuid).done(function (url) {
      oe2.attr('href', anonymizer.api(url));
    });
    links.append(' · ');
    $('<a class="oa-open-explorer">').attr('href', anonymizer.api(EXPLORER + '#' + page + '?uuid=' +
      encodeURIComponent(uuid))).text('Orthanc Explorer').appendTo(links);
    if (withPage) {
      links.append(' · ');
      $('<a class="oa-open-page">').attr('href', pageFor(page, uuid)).text('its anonymization page').appendTo(links);
    }
    return links;
  }

  /* A resource as a line: its label (fetched) and the ways to open it. */
  function resourceLine(page, uuid, what, withPage) {
    var line = $('<li class="oa-resource-line">').attr('data-uuid', uuid);
    var label = $('<span class="oa-resource-label">').text(what + uuid.substring(0, 8) + '…').appendTo(line);
    line.append(' ').append(openLinks(page, uuid, withPage));
    request('GET', LEVELS[page].route + '/' + encodeURIComponent(uuid)).done(function (found) {
      label.text(what + anonymizer.resourceLabel(page, found));
    }).fail(function (xhr) {
      label.text(what + uuid.substring(0, 8) + '…: ' + (xhr.status === 404 ?
        'not in Orthanc (deleted after anonymization?)' : anonymizer.describeFailure(xhr, 'loading it')));
      line.addClass('oa-gone').children('.oa-open-links').remove();
    });
    return line;
  }

  /* The resource's original (when it is a copy), the profile used, and its copies. */
  function showLinks(resource, section) {
    var level = resource.level;
    var route = level.route + '/' + encodeURIComponent(resource.uuid);
    request('GET', 'anonymizer/' + route + '/links').done(function (links) {
      if (links.Source) {
        $('<h3>').text('Anonymized copy').appendTo(section);
        var profile = $('<p class="oa-profile-used" id="oa-profile-used">').text('Profile not recorded')
          .appendTo(section);
        request('GET', route + '/metadata/AnonymizationProfile').done(function (text) {
          profile.text(anonymizer.describeProfile(typeof text === 'string' ? text : JSON.stringify(text)));
        });
        $('<ul class="oa-list" id="oa-original">')
          .append(resourceLine(resource.page, links.Source, 'Original ' + level.word + ': ', true)).appendTo(section);
      }
      var copies = links.Copies || [];
      if (copies.length) {
        $('<h3>').text('Anonymized copies (' + copies.length + ')').appendTo(section);
        var list = $('<ul class="oa-list" id="oa-copies">').appendTo(section);
        $.each(copies.slice(0, MAX_LISTED), function (i, copy) {
          list.append(resourceLine(resource.page, copy, 'Copy ' + (i + 1) + ': ', true));
        });
      }
    }).fail(function (xhr) {
      $('<p class="oa-status oa-error">').text(anonymizer.describeFailure(xhr, 'loading its original and copies'))
        .appendTo(section);
    });
  }

  function start() {
    var section = $('#oa-resource');
    var resource = requestedResource();
    if (!resource) {
      $('<p class="oa-status oa-error" id="oa-page-error">').text(
        'Nothing to anonymize: this page is opened by the Anonymize buttons of Orthanc Explorer 2, with ' +
        '?study=, ?series= or ?patient= and an Orthanc ID, or ?studies= and IDs separated by commas.'
      ).appendTo(section);
      return;
    }
    var many = resource.uuids || [resource.uuid];
    $('<h2 id="oa-resource-title">').text(resource.uuids ? many.length + ' selected ' + resource.level.plural :
      'This ' + resource.level.word).appendTo(section);
    var list = $('<ul class="oa-list" id="oa-selected">').appendTo(section);
    $.each(many.slice(0, MAX_LISTED), function (i, uuid) {
      list.append(resourceLine(resource.page, uuid, '', false));
    });
    if (many.length > MAX_LISTED) {
      $('<li>').text('… and ' + (many.length - MAX_LISTED) + ' more').appendTo(list);
    }
    if (!resource.uuids) {
      showLinks(resource, section);
    }
    anonymizer.open(resource, {
      container: $('#oa-dialog-host'),
      copyLinks: function (page, uuid, source, area) {
        var copies = area.children('ul.oa-new-copies');
        if (!copies.length) {
          copies = $('<ul class="oa-list oa-new-copies" id="oa-new-copies">').appendTo(area);
        }
        copies.append(resourceLine(page, uuid, 'New ' + LEVELS[page].word + ': ', true));
      }
    });
  }

  $(start);
}(jQuery, window.OrthancAnonymizer));
